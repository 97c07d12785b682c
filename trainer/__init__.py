"""Streaming trainer: mixed-supervision shards, the three losses, evaluation and inference."""
