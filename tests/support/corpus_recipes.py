"""Recipes over a small generated corpus (the demo's datasets in their real layouts), for the corpus tests."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.demo.corpus import CorpusSize
from pipeline.taxonomy.yaml_io import dump_yaml

SMALL = CorpusSize(train=8, val=3, image_size=64)


def write_recipe(path: Path, data: Path, out: Path, cache: Path, datasets: list[dict], **fields) -> Path:
    """A recipe over the corpus written under `data` (its data/ and taxonomies/), offline, MiniLM sentences."""
    recipe = {"name": "test-corpus", "data_root": str(data / "data"), "taxonomies": [str(data / "taxonomies")],
              "cache": str(cache), "out": str(out), "offline": True,
              "embed": {"encoder": "minilm", "modes": ["sentence"]}, "datasets": datasets, **fields}
    path.write_text(dump_yaml(recipe))
    return path


def file_stamps(folder: Path, pattern: str = "*.tar") -> dict[str, tuple[int, int]]:
    """Relative path -> (mtime ns, size) of every matching file under folder."""
    return {str(p.relative_to(folder)): (os.stat(p).st_mtime_ns, os.stat(p).st_size)
            for p in sorted(folder.rglob(pattern))}
