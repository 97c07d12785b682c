"""ssiw pipeline: taxonomies, label descriptions and embeddings, dataset conversion into shards."""

__version__ = "0.1.0"
