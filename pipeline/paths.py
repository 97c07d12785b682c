"""Default locations. Every command takes explicit paths; these are only the defaults.

Outputs (cache/, shards/) are relative to the current directory, like any CLI tool's outputs.
The shipped taxonomies live beside the package in the repository (editable install).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_taxonomy_dir() -> Path:
    """The shipped taxonomy folder, or $SSIW_TAXONOMIES when set."""
    return Path(os.environ.get("SSIW_TAXONOMIES", REPO_ROOT / "taxonomies"))


def default_cache_dir() -> Path:
    """Where description caches and embedding tables go ($SSIW_CACHE or ./cache)."""
    return Path(os.environ.get("SSIW_CACHE", "cache"))


def default_shard_dir() -> Path:
    """Where shards go ($SSIW_SHARDS or ./shards)."""
    return Path(os.environ.get("SSIW_SHARDS", "shards"))
