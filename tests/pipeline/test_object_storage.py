"""Shards in object storage: convert, kill and resume, stats, preview, train and eval from s3://, against a
real S3 endpoint on 127.0.0.1 (moto's server mode, fixture `s3_endpoint` in conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_taxonomy
from typer.testing import CliRunner

from pipeline.convert import readers
from pipeline.convert.runner import convert_split

SMALL = 13_000  # bytes: about 2 toy samples per shard


def run(root: Path, out, **kw):
    kw.setdefault("shard_bytes", SMALL)
    return convert_split(toy_taxonomy(), TOY_READER, root, "train", out, progress=False, **kw)


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)


def objects(url: str) -> dict[str, bytes]:
    """Every object under a prefix, by its key relative to the prefix."""
    fs = s3()
    prefix = url.removeprefix("s3://").rstrip("/")
    return {key[len(prefix) + 1:]: fs.cat_file(key) for key in fs.find(prefix)}


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_toy_dataset(root, 9)
    return root


def test_convert_to_s3_gives_the_local_layout_and_identical_objects_twice(toy_root, tmp_path, s3_bucket):
    import polars as pl

    local = tmp_path / "local"
    run(toy_root, local)
    first, second = f"{s3_bucket}/run1", f"{s3_bucket}/run2"
    result = run(toy_root, first)
    run(toy_root, second)
    assert result.written == 9 and result.shards > 2
    a, b, expected = objects(first), objects(second), files(local)
    assert a == b  # two builds: byte-identical objects
    assert set(a) == set(expected) and not [k for k in a if ".tmp-" in k]
    assert {k: v for k, v in a.items() if k.endswith(".tar")} == {k: v for k, v in expected.items() if k.endswith(".tar")}
    # The index reads with polars straight from the store (polars' own client, same AWS variables).
    index = pl.read_parquet(f"{first}/index.parquet")
    assert index["shard"].to_list() == sorted(k.split("/")[1] for k in a if k.endswith(".tar"))
    assert index["samples"].sum() == 9
    sizes = {k.split("/")[1]: len(v) for k, v in a.items() if k.endswith(".tar")}
    assert dict(zip(index["shard"], index["bytes"])) == sizes
    manifest = pl.read_parquet(f"{first}/toy/train.manifest.parquet")
    assert sorted(manifest["key"].to_list()) == [f"img_{i:04d}" for i in range(9)]


def test_sigkill_midway_then_rerun_keeps_finished_shards_and_removes_stale_temps(toy_root, tmp_path, s3_bucket):
    reference = tmp_path / "reference"
    run(toy_root, reference)
    out = f"{s3_bucket}/killed"
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[3]);"
        "from support.convert_fakes import TOY_READER, toy_taxonomy;"
        "from pipeline.convert.runner import convert_split;"
        f"convert_split(toy_taxonomy(), TOY_READER, Path(sys.argv[1]), 'train', sys.argv[2], shard_bytes={SMALL}, progress=False)"
    )
    env = {**os.environ, "TOY_READ_DELAY": "0.15"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(toy_root), out, str(Path(__file__).parents[1])], env=env)
    parts = out.removeprefix("s3://") + "/toy/.parts"
    fs = s3()
    deadline = time.time() + 60
    while time.time() < deadline and not fs.glob(f"{parts}/*.json"):
        time.sleep(0.05)
        fs.invalidate_cache()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fs.invalidate_cache()
    done_before = len(fs.glob(f"{parts}/*.json"))
    total = len(list((reference / "toy").glob("*.tar")))
    assert 1 <= done_before < total  # killed mid-way
    # What a kill between upload and copy leaves: temporary objects, never a partial object under a final name.
    prefix = out.removeprefix("s3://") + "/toy"
    fs.pipe_file(f"{prefix}/train-000000.tar.tmp-deadbeef0000", b"partial")
    fs.pipe_file(f"{prefix}/.parts/train-000001.json.tmp-0123456789ab", b"{")
    fs.pipe_file(f"{prefix}/train-000099.tar", b"from an older, longer plan")
    result = run(toy_root, out)
    assert result.kept == done_before and result.written == 9
    after = objects(out)
    assert not [k for k in after if ".tmp-" in k] and "toy/train-000099.tar" not in after
    assert {k: v for k, v in after.items() if k.endswith(".tar")} == {
        k: v for k, v in files(reference).items() if k.endswith(".tar")}


def test_ray_tasks_write_to_s3_with_the_drivers_settings(ray_toy, toy_root, tmp_path, s3_bucket):
    """Ray may have started before the AWS variables were set (as on a cluster whose nodes lack them):
    the tasks get the driver's AWS_* settings and write the same objects as an in-process run."""
    reference = f"{s3_bucket}/in-process"
    run(toy_root, reference)
    out = f"{s3_bucket}/ray"
    result = run(toy_root, out, use_ray=True, workers=2)
    assert result.written == 9
    assert objects(out) == objects(reference)


@pytest.fixture
def cli_setup(tmp_path: Path, monkeypatch):
    """A taxonomy folder with one toy dataset and the toy reader standing in for png_folder."""
    tax_dir = tmp_path / "taxonomies"
    tax_dir.mkdir()
    (tax_dir / "labels.yaml").write_text(yaml.safe_dump({"standalone": True, "labels": {
        "thing": {"name": "thing", "wikipedia": "Object", "group": "other", "description": "Something solid."}}}))
    (tax_dir / "toy.yaml").write_text(yaml.safe_dump({
        "name": "toy", "version": "1", "homepage": "https://example.org", "format": "png_folder",
        "supervision": "dense", "splits": {"train": {"images": "train/images", "annotations": "train/labels"}},
        "ignore_values": [0], "classes": [{"name": f"toy-c{i}", "label": "thing", "raw_id": i + 1} for i in range(3)],
    }))
    root = tmp_path / "data"
    make_toy_dataset(root, 6)
    (root / "train" / "labels" / "img_0002.png").write_bytes(b"not a png")  # one for the quarantine
    monkeypatch.setattr(readers, "get_reader", lambda fmt: TOY_READER)
    return root, tax_dir


def test_cli_convert_stats_and_preview_on_s3(cli_setup, tmp_path, s3_bucket):
    from pipeline.cli import app

    root, tax_dir = cli_setup
    out = f"{s3_bucket}/cli"

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    result = invoke("convert", "toy", "--root", root, "--out", out, "--taxonomies", tax_dir, "--no-ray",
                    "--shard-size", "13kB", "--max-quarantined", "0.5")  # 1 of 6 broken on purpose
    assert result.exit_code == 0, result.output
    assert "written 5 samples, quarantined 1" in result.output
    stored = objects(out)
    assert "toy/train.quarantine.jsonl" in stored and b"img_0002" in stored["toy/train.quarantine.jsonl"]
    result = invoke("shards", "stats", "--out", out, "--taxonomies", tax_dir)
    assert result.exit_code == 0, result.output
    assert "toy-c0" in result.output and f"{out}/stats.png" in result.output
    assert objects(out)["stats.png"].startswith(b"\x89PNG")
    html = tmp_path / "preview.html"
    result = invoke("shards", "preview", "--out", out, "--taxonomies", tax_dir, "--html", html, "--n", "4")
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert text.count("src='data:image/jpeg;base64,") == 4 and "Quarantined: 1" in text and "img_0002" in text


def test_train_and_eval_read_shards_from_s3(toy_root, tmp_path, s3_bucket):
    from tests.support.synthetic import tiny_table
    from trainer.config import TrainConfig
    from trainer.predict.evaluate import samples_from_shards
    from trainer.train import run_training

    out = f"{s3_bucket}/train"
    run(toy_root, out)
    cfg = TrainConfig(out_dir=tmp_path / "runs", shards=out, datasets=[{"name": "toy", "split": "train"}],
                      model="tiny", short_edge=24, crop=(16, 16), scale=(0.9, 1.1), batch_size=2, steps=4,
                      epoch_samples=8, workers=1, checkpoint_every=4, shuffle_buffer=0)
    summary = run_training(cfg, table=tiny_table({"toy": 3}), progress=False)
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4]
    assert all(np.isfinite(h["total"]) for h in summary["history"])
    keys = [key for key, _, _ in samples_from_shards(out, "toy", "train", None)]
    assert sorted(keys) == [f"img_{i:04d}" for i in range(9)]


def test_missing_bucket_is_a_clear_error_before_any_work(toy_root, s3_endpoint):
    from pipeline.convert.runner import ConvertError

    with pytest.raises(ConvertError, match="s3://no-such-bucket-here/shards: no such bucket"):
        run(toy_root, "s3://no-such-bucket-here/shards")


def test_missing_s3_prefix_is_a_clear_error(s3_bucket):
    from pipeline.shards.read import find_shards

    with pytest.raises(FileNotFoundError, match=f"{s3_bucket}/nothing/toy/train-"):
        find_shards(f"{s3_bucket}/nothing", "toy", "train")


def test_safe_write_on_s3_shows_an_object_only_when_complete(s3_bucket):
    import re

    from pipeline.safe_write import atomic_path, remove_stale_temps, save_figure, write_text_atomic

    fs, prefix = s3(), s3_bucket.removeprefix("s3://")
    write_text_atomic(f"{s3_bucket}/a/small.txt", "whole")
    assert fs.cat_file(f"{prefix}/a/small.txt") == b"whole"
    with atomic_path(f"{s3_bucket}/a/big.bin") as tmp:
        tmp.write_bytes(b"x" * 1000)
        assert not fs.exists(f"{prefix}/a/big.bin")  # nothing under the final name while writing
    assert fs.cat_file(f"{prefix}/a/big.bin") == b"x" * 1000 and not tmp.exists()
    with pytest.raises(RuntimeError), atomic_path(f"{s3_bucket}/a/failed.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer died")
    assert not fs.exists(f"{prefix}/a/failed.bin") and not tmp.exists()
    assert sorted(fs.ls(f"{prefix}/a")) == [f"{prefix}/a/big.bin", f"{prefix}/a/small.txt"]  # no temp keys
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    save_figure(plt.figure(), f"{s3_bucket}/a/figure.png", dpi=20)
    assert fs.cat_file(f"{prefix}/a/figure.png").startswith(b"\x89PNG")
    # Stale temps: only the ones whose final name matches are removed, and only when old enough.
    for key in ("train-000000.tar.tmp-0123456789ab", "other.json.tmp-0123456789ab", "train-000000.tar"):
        fs.pipe_file(f"{prefix}/b/{key}", b"?")
    assert remove_stale_temps(f"{s3_bucket}/b", re.compile(r"train-\d{6}\.tar"), min_age_s=3600) == []
    removed = remove_stale_temps(f"{s3_bucket}/b", re.compile(r"train-\d{6}\.tar"))
    assert removed == [f"{s3_bucket}/b/train-000000.tar.tmp-0123456789ab"]
    assert sorted(k.rsplit("/", 1)[1] for k in fs.ls(f"{prefix}/b")) == ["other.json.tmp-0123456789ab", "train-000000.tar"]
