"""Put files where a taxonomy's split says they live, and load the shipped taxonomy YAMLs."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from pipeline.convert.layouts.paired import located, wild_folders
from pipeline.taxonomy.load import load_dataset_file
from pipeline.taxonomy.schema import DatasetTaxonomy

REPO = Path(__file__).resolve().parents[2]
TAXONOMIES = REPO / "taxonomies"


def shipped(name: str) -> DatasetTaxonomy:
    """A shipped taxonomy YAML, parsed and checked on its own (no registry needed)."""
    path = TAXONOMIES / f"{name}.yaml"
    tax, problems = load_dataset_file(path)
    assert tax is not None and not problems, f"{path}: {[str(p) for p in problems]}"
    return tax


def with_changes(tax: DatasetTaxonomy, tmp: Path, **changes) -> DatasetTaxonomy:
    """A copy of a taxonomy with some fields changed, written as a YAML in tmp and loaded back."""
    raw = tax.model_dump(mode="json", exclude_none=True)
    raw.update(changes)
    path = tmp / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    loaded, problems = load_dataset_file(path)
    assert loaded is not None and not problems, problems
    return loaded


def place(
    root: Path, pattern: str, name: str, src: Path | None = None, data: bytes | None = None, folder: str = "x"
) -> Path:
    """Put a real sample's file (or bytes) named `name` where `pattern` (a split's glob or folder) would
    find it; wildcard folders become `folder`."""
    dest = located(root, pattern, (folder,) * (wild_folders(pattern) or 0), name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src is not None:
        shutil.copyfile(src, dest)
    else:
        assert data is not None
        dest.write_bytes(data)
    return dest
