"""`ssiw convert` and `ssiw shards stats` through Typer, with the toy reader standing in for the format's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from support.convert_fakes import TOY_READER, make_toy_dataset
from typer.testing import CliRunner

from pipeline.cli import app  # the real command, with its one handler of user-facing errors
from pipeline.convert import readers


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    """A taxonomy folder with two toy datasets, their roots, and the toy reader for png_folder."""
    tax_dir = tmp_path / "taxonomies"
    tax_dir.mkdir()
    (tax_dir / "labels.yaml").write_text(yaml.safe_dump({"standalone": True, "labels": {
        "thing": {"name": "thing", "wikipedia": "Object", "group": "other", "description": "Something."}}}))
    for name in ("toy-a", "toy-b"):
        (tax_dir / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "version": "1", "homepage": "https://example.org", "format": "png_folder",
            "supervision": "dense",
            "splits": {"train": {"images": "train/images", "annotations": "train/labels"}},
            "ignore_values": [0],
            "classes": [{"name": f"{name}-c{i}", "label": "thing", "raw_id": i + 1} for i in range(3)],
        }))
        make_toy_dataset(tmp_path / "data" / name, 5 if name == "toy-a" else 3)
    monkeypatch.setattr(readers, "get_reader", lambda fmt: TOY_READER)
    return tmp_path, tax_dir


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_convert_then_stats(setup):
    tmp, tax_dir = setup
    out = tmp / "shards"
    result = invoke("convert", "toy-a", "--root", tmp / "data" / "toy-a", "--out", out, "--taxonomies", tax_dir,
                    "--no-ray", "--shard-size", "13kB")
    assert result.exit_code == 0, result.output
    assert "written 5 samples, quarantined 0" in result.output
    assert len(list((out / "toy-a").glob("train-*.tar"))) > 1
    png = tmp / "chart.png"
    result = invoke("shards", "stats", "--out", out, "--png", png, "--taxonomies", tax_dir)
    assert result.exit_code == 0, result.output
    assert "toy-a" in result.output and "toy-a-c0" in result.output  # class names from the taxonomy
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 100


def test_convert_all_from_roots_yaml(setup):
    import polars as pl

    tmp, tax_dir = setup
    (tmp / "roots.yaml").write_text("toy-a: data/toy-a\ntoy-b: data/toy-b\n")  # relative to the YAML
    out = tmp / "shards"
    result = invoke("convert", "--all", "--roots", tmp / "roots.yaml", "--out", out, "--taxonomies", tax_dir,
                    "--no-ray")
    assert result.exit_code == 0, result.output
    assert "written 8 samples" in result.output
    index = pl.read_parquet(out / "index.parquet")
    assert index.group_by("dataset").agg(pl.col("samples").sum()).sort("dataset").rows() == [("toy-a", 5), ("toy-b", 3)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["toy-a", "--root", "{tmp}/nowhere"], "nowhere does not exist"),
        (["toy-a", "--root", "{tmp}/data/toy-a", "--split", "test"], "no split 'test'"),
        (["toy-c", "--root", "{tmp}/data/toy-a"], "no taxonomy named 'toy-c'"),
        (["toy-a", "--root", "{tmp}/data/toy-a", "--shard-size", "big"], "cannot read shard size 'big'"),
        (["toy-a", "--root", "{tmp}/data/toy-a", "--box-embeddings", "clip"], "open_clip:MODEL:PRETRAINED"),
        (["--all"], "--all needs --roots"),
    ],
)
def test_helpful_errors(setup, args, message):
    tmp, tax_dir = setup
    result = invoke("convert", *[a.format(tmp=tmp) for a in args], "--taxonomies", tax_dir, "--no-ray",
                    "--out", tmp / "shards")
    assert result.exit_code == 1
    assert message in result.output


def test_strict_names_file_and_reason(setup):
    tmp, tax_dir = setup
    (tmp / "data" / "toy-a" / "train" / "labels" / "img_0002.png").write_bytes(b"junk")
    common = ["toy-a", "--root", tmp / "data" / "toy-a", "--out", tmp / "shards", "--taxonomies", tax_dir, "--no-ray"]
    result = invoke("convert", *common, "--strict")
    assert result.exit_code == 1
    assert "--strict: bad sample" in result.output and "img_0002.png: cannot decode annotation" in result.output
    # 1 of 5 is above the default --max-quarantined: the shards are written, and the job fails saying so.
    result = invoke("convert", *common)
    assert result.exit_code == 1 and "written 4 samples, quarantined 1" in result.output
    assert "toy-a/train quarantined 1 of 5 samples (20%), more than --max-quarantined 0.1" in result.output
    result = invoke("convert", *common, "--max-quarantined", "0.25")
    assert result.exit_code == 0 and "written 4 samples, quarantined 1" in result.output
    entry = json.loads((tmp / "shards" / "toy-a" / "train.quarantine.jsonl").read_text())
    assert entry["key"] == "img_0002"


def test_a_split_that_writes_nothing_fails(setup):
    tmp, tax_dir = setup
    make_toy_dataset(tmp / "data" / "toy-b", 3, seed=1, max_raw=9)  # raw values 4..9: not in the taxonomy
    result = invoke("convert", "toy-b", "--root", tmp / "data" / "toy-b", "--out", tmp / "shards",
                    "--taxonomies", tax_dir, "--no-ray", "--max-quarantined", "1")
    assert result.exit_code == 1
    assert "toy-b/train wrote nothing: all 3 samples were quarantined" in result.output


def test_limit_reads_a_few_samples_and_writes_nothing(setup, monkeypatch):
    tmp, tax_dir = setup
    monkeypatch.setenv("COLUMNS", "200")  # paths unfolded, to be found whole
    (tmp / "data" / "toy-a" / "train" / "labels" / "img_0001.png").write_bytes(b"junk")
    result = invoke("convert", "toy-a", "--root", tmp / "data" / "toy-a", "--out", tmp / "shards",
                    "--taxonomies", tax_dir, "--no-ray", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert not (tmp / "shards").exists()
    out = result.output
    assert "first 2 of 5 planned samples" in out and "img_0000" in out and "img_0002" not in out
    assert "train/images/img_0000.png" in out and "train/labels/img_0000.png" in out
    assert "ok, 3 classes" in out and "cannot decode annotation" in out
    assert all(f"toy-a-c{i}" in out for i in range(3))  # the classes found, by name
    assert "1 of 2 would convert, 1 would be quarantined" in out


def test_an_edited_taxonomy_redoes_the_shards_and_says_why(setup):
    tmp, tax_dir = setup
    common = ["toy-a", "--root", tmp / "data" / "toy-a", "--out", tmp / "shards", "--taxonomies", tax_dir, "--no-ray"]
    assert invoke("convert", *common).exit_code == 0
    path = tax_dir / "toy-a.yaml"
    tax = yaml.safe_load(path.read_text())
    tax["classes"][0]["raw_id"], tax["classes"][1]["raw_id"] = 2, 1
    path.write_text(yaml.safe_dump(tax))
    result = invoke("convert", *common)
    assert result.exit_code == 0, result.output
    assert "toy-a/train: redid 1 shard(s): taxonomy mapping changed" in result.output
