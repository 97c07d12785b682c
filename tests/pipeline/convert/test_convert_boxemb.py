"""Box data: boxes in the record, and optional open_clip crop embeddings (a tiny random ViT, shapes only)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from support.convert_fakes import TOY_BOX_READER, make_toy_dataset, toy_taxonomy

from pipeline.convert.boxemb import BoxEmbeddingError, box_embedder, parse_spec
from pipeline.convert.runner import convert_split
from pipeline.convert.shard import ShardOptions

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def tiny_spec(tmp_path: Path) -> str:
    config = tmp_path / "ssiw-tiny-vit.json"
    config.write_text(json.dumps(TINY_VIT))
    return f"open_clip:{config}:random"


def _samples(out: Path):
    import webdataset as wds

    return list(wds.WebDataset(sorted(str(p) for p in (out / "toy").glob("*.tar")), shardshuffle=False))


def test_box_samples_with_crop_embeddings(tmp_path: Path, tiny_spec: str):
    import polars as pl

    root = tmp_path / "root"
    make_toy_dataset(root, 4)
    tax = toy_taxonomy(supervision="box")
    out = tmp_path / "out"
    result = convert_split(tax, TOY_BOX_READER, root, "train", out, shard_bytes=10**9, progress=False,
                           options=ShardOptions(box_embeddings=tiny_spec))
    assert (result.written, result.quarantined) == (4, 0)
    samples = _samples(out)
    assert len(samples) == 4
    for s in samples:
        assert "label.png" not in s
        record = json.loads(s["json"])
        n = int(s["__key__"].split("_")[1])
        assert record["supervision"] == "box" and record["box_embedding_encoder"] == tiny_spec
        assert record["boxes"] == [[0, 0, 10 + n % 5, 12, n % 3], [5, 4, 32, 24, (n + 1) % 3]]
        vectors = np.load(io.BytesIO(s["boxemb.npy"]))
        assert vectors.dtype == np.float16 and vectors.shape == (2, TINY_VIT["embed_dim"])
        assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=1e-2)
    manifest = pl.read_parquet(out / "toy" / "train.manifest.parquet")
    row = manifest.row(0, named=True)  # img_0000: boxes of class 0 (10x12) and class 1 (27x20)
    assert row["num_boxes"] == 2 and row["classes_present"] == [0, 1] and row["class_pixels"] == [120, 540]


def test_box_samples_without_embeddings(tmp_path: Path):
    root = tmp_path / "root"
    make_toy_dataset(root, 2)
    out = tmp_path / "out"
    convert_split(toy_taxonomy(supervision="box"), TOY_BOX_READER, root, "train", out, shard_bytes=10**9,
                  progress=False)
    for s in _samples(out):
        assert "boxemb.npy" not in s and json.loads(s["json"])["box_embedding_encoder"] is None


def test_missing_weights_say_how_to_supply_them(tmp_path: Path):
    config = tmp_path / "ssiw-tiny-vit2.json"
    config.write_text(json.dumps(TINY_VIT))
    with pytest.raises(BoxEmbeddingError, match=r"cannot load weights .*local .*checkpoint"):
        box_embedder(f"open_clip:{config}:{tmp_path / 'missing.safetensors'}")
    with pytest.raises(BoxEmbeddingError, match="has no model 'no-such-model'"):
        box_embedder("open_clip:no-such-model:random")
    with pytest.raises(BoxEmbeddingError, match="expected open_clip:MODEL:PRETRAINED"):
        parse_spec("clip:ViT-B-32")
    assert parse_spec("open_clip:ViT-B-32:laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
