"""Default locations. Every command takes explicit paths; these are only the defaults.

Outputs (cache/, shards/) are relative to the current directory, like any CLI tool's outputs.
The shipped taxonomies are the repository's `taxonomies/` folder; a wheel or `pip install .` carries a
copy inside the package as `pipeline/shipped_taxonomies/` (see setup.py), found from any directory.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Only an installed (non-editable) package has this folder; a checkout or editable install uses the repo's.
PACKAGED_TAXONOMIES = Path(__file__).resolve().parent / "shipped_taxonomies"


def default_taxonomy_dir() -> Path:
    """The shipped taxonomy folder (package data, or the repository's): the base every taxonomy set is
    read on top of ($SSIW_TAXONOMIES and --taxonomies folders layer over it; pipeline/taxonomy/load.py)."""
    if PACKAGED_TAXONOMIES.is_dir():
        return PACKAGED_TAXONOMIES
    return REPO_ROOT / "taxonomies"


def shipped_recipe_dir() -> Path:
    """The shipped corpus recipes (`taxonomies/corpora/`, packaged with the taxonomies). The taxonomy
    loader reads only a folder's top-level YAMLs, so this subfolder is never taken for datasets."""
    return default_taxonomy_dir() / "corpora"


def env_taxonomy_dirs() -> list[Path]:
    """$SSIW_TAXONOMIES as a path list (':'-separated, like $PATH), in order."""
    return [Path(p) for p in os.environ.get("SSIW_TAXONOMIES", "").split(os.pathsep) if p]


def default_cache_dir() -> Path:
    """Where description caches and embedding tables go ($SSIW_CACHE or ./cache)."""
    return Path(os.environ.get("SSIW_CACHE", "cache"))


def default_shard_dir() -> Path | str:
    """Where shards go ($SSIW_SHARDS, which may be an s3:// URL, or ./shards)."""
    from pipeline.storage import as_location

    return as_location(os.environ.get("SSIW_SHARDS", "shards"))
