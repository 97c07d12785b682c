"""End to end: the real ADE20K challenge fixtures through the shipped ade20k reader and taxonomy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.order import in_shard_order
from pipeline.convert.readers import get_reader
from pipeline.convert.runner import convert_split
from pipeline.paths import default_taxonomy_dir
from pipeline.taxonomy.load import load_dataset_file


def test_real_ade20k_challenge_fixtures_convert(real_fixtures: Path, tmp_path: Path):
    import polars as pl
    import webdataset as wds

    tax, problems = load_dataset_file(default_taxonomy_dir() / "ade20k-150.yaml")
    assert tax is not None and not problems
    src = real_fixtures / "ade20k-challenge"
    # The YAML's layout is images/<split>/*.jpg and annotations/<split>/*.png.
    root = tmp_path / "ade"
    for sub in ("images", "annotations"):
        (root / sub).mkdir(parents=True)
        (root / sub / "validation").symlink_to(src / sub)
    out = tmp_path / "shards"
    result = convert_split(tax, get_reader(tax.format), root, "validation", out, shard_bytes=10**9, progress=False)
    assert (result.written, result.quarantined, result.shards) == (3, 0, 1)

    samples = list(wds.WebDataset([str(out / "ade20k-150" / "validation-000000.tar")], shardshuffle=False))
    keys = ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    assert [s["__key__"] for s in samples] == in_shard_order(keys, "ade20k-150", "validation", key=lambda k: k)
    manifest = pl.read_parquet(out / "ade20k-150" / "validation.manifest.parquet")
    for s, row in zip(samples, manifest.iter_rows(named=True)):
        assert s["jpg"] == (src / "images" / f"{s['__key__']}.jpg").read_bytes()
        raw = np.array(Image.open(src / "annotations" / f"{s['__key__']}.png")).astype(int)
        label = np.array(Image.open(io.BytesIO(s["label.png"])))
        assert label.dtype == np.uint8
        assert np.array_equal(label, np.where(raw == 0, 255, raw - 1))  # 0 = other -> ignore; k -> k-1
        record = json.loads(s["json"])
        present = sorted(set(raw[raw > 0].ravel().tolist()))
        assert record["classes_present"] == [v - 1 for v in present] == row["classes_present"]
        assert (record["width"], record["height"]) == (raw.shape[1], raw.shape[0])
        assert record["num_classes"] == 150 and record["ignore_index"] == 255
        assert row["class_pixels"] == [int((raw == v).sum()) for v in present]
    # objectInfo150 order: index 0 is wall, 2 is sky; the first fixture shows both.
    assert tax.class_names[0] == "wall" and {0, 2} <= set(json.loads(samples[0]["json"])["classes_present"])
