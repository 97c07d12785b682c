"""Helpers the tests share (and the benchmarks reuse): data writers and stand-ins built on the real formats."""
