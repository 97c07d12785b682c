"""Shard writer, manifests, quarantine, resume and Ray runner, through the toy reader in convert_fakes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.convert_fakes import TOY_READER, H, W, make_toy_dataset, toy_taxonomy

from pipeline.convert.order import in_shard_order
from pipeline.convert.plan import parse_size, plan_split
from pipeline.convert.runner import ConvertError, convert_split
from pipeline.convert.shard import ShardFailed, ShardOptions, StrictStop

SMALL = 13_000  # bytes: about 2 toy samples per shard, so every run has several shards


def run(root: Path, out: Path, tax=None, **kw):
    kw.setdefault("shard_bytes", SMALL)
    return convert_split(tax or toy_taxonomy(), TOY_READER, root, "train", out, progress=False, **kw)


def shard_order(keys, dataset: str = "toy", split: str = "train") -> list[str]:
    """The documented order samples are written in (a seeded random order, see order.py)."""
    return in_shard_order(keys, dataset, split, key=lambda k: k)


ALL_KEYS = shard_order(f"img_{i:04d}" for i in range(9))


def tar_bytes(out: Path, dataset: str = "toy") -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / dataset).glob("*.tar"))}


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_toy_dataset(root, 9)
    return root


@pytest.fixture
def reference(toy_root: Path, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "reference"
    run(toy_root, out)
    return tar_bytes(out)


def test_parse_size():
    assert parse_size("1GB") == 10**9
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5kB") == 1500
    assert parse_size("4096") == 4096
    for bad in ("", "GB", "1XB", "-1GB", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_shards_readable_by_tar_tarfile_and_webdataset(toy_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run(toy_root, out)
    assert (result.written, result.quarantined) == (9, 0)
    tars = sorted((out / "toy").glob("train-*.tar"))
    assert len(tars) == result.shards > 1
    listed = subprocess.run(["tar", "tf", str(tars[0])], capture_output=True, text=True, check=True).stdout.split()
    ext = {k: "jpg" if (toy_root / "train" / "images" / f"{k}.jpg").exists() else "png" for k in ALL_KEYS}
    assert listed == [f"{k}.{m}" for k in ALL_KEYS[:2] for m in (ext[k], "label.png", "json")][: len(listed)]
    with tarfile.open(tars[0]) as tf:
        members = tf.getmembers()
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname, member.mode) == (0, 0, 0, "", "", 0o644)

    import webdataset as wds

    samples = list(wds.WebDataset([str(t) for t in tars], shardshuffle=False))
    assert [s["__key__"] for s in samples] == ALL_KEYS
    tax = toy_taxonomy()
    for s in samples:
        ext = "jpg" if "jpg" in s else "png"
        source = toy_root / "train" / "images" / f"{s['__key__']}.{ext}"
        assert s[ext] == source.read_bytes()  # never re-encoded
        label = np.array(Image.open(io.BytesIO(s["label.png"])))
        assert label.dtype == np.uint8 and label.shape == (H, W)
        raw = np.array(Image.open(toy_root / "train" / "labels" / f"{s['__key__']}.png")).astype(int)
        expected = np.where(raw == 0, 255, raw - 1)  # raw 0 ignored, raw k -> class k-1
        assert np.array_equal(label, expected)
        record = json.loads(s["json"])
        assert record["dataset"] == "toy" and record["split"] == "train" and record["supervision"] == "dense"
        assert (record["width"], record["height"], record["num_classes"], record["ignore_index"]) == (W, H, 3, 255)
        assert record["classes_present"] == sorted(set(expected[expected != 255].tolist()))
        assert record["boxes"] is None and record["sources"]["image"] == source.name
        assert set(s) >= {"__key__", ext, "label.png", "json"}
        assert tax.name == record["dataset"]


def test_manifest_and_index(toy_root: Path, tmp_path: Path):
    import polars as pl

    out = tmp_path / "out"
    run(toy_root, out)
    manifest = pl.read_parquet(out / "toy" / "train.manifest.parquet")
    assert manifest["key"].to_list() == ALL_KEYS
    for row in manifest.iter_rows(named=True):
        raw = np.array(Image.open(toy_root / "train" / "labels" / f"{row['key']}.png")).astype(int)
        counts = np.bincount(raw.ravel(), minlength=4)[1:]  # raw k -> class k-1; raw 0 is ignore
        present = [int(c) for c in np.nonzero(counts)[0]]
        assert row["classes_present"] == present
        assert row["class_pixels"] == [int(counts[c]) for c in present]
        assert (row["width"], row["height"]) == (W, H)
        with tarfile.open(out / "toy" / row["shard"]) as tf:
            assert f"{row['key']}.json" in tf.getnames()
    index = pl.read_parquet(out / "index.parquet")
    assert index["samples"].sum() == 9
    assert index["shard"].to_list() == sorted(set(manifest["shard"]))
    for row in index.iter_rows(named=True):
        assert row["bytes"] == (out / "toy" / row["shard"]).stat().st_size
        assert row["samples"] == manifest.filter(pl.col("shard") == row["shard"]).height
    assert (out / "toy" / "train.quarantine.jsonl").read_text() == ""


def test_two_runs_are_byte_identical(toy_root: Path, tmp_path: Path, reference):
    out = tmp_path / "again"
    run(toy_root, out)
    assert tar_bytes(out) == reference


def test_resume_after_damage_restores_identical_shards(toy_root: Path, tmp_path: Path, reference):
    import polars as pl

    out = tmp_path / "out"
    run(toy_root, out)
    ds = out / "toy"
    (ds / "train-000001.tar").unlink()  # lost shard
    with open(ds / "train-000002.tar", "r+b") as f:  # truncated shard
        f.truncate(1000)
    (ds / ".parts" / "train-000003.json").unlink()  # tar renamed, killed before its part
    stale = ds / "train-000000.tar.tmp-deadbeef0000"
    stale.write_bytes(b"partial")
    (ds / ".parts" / "train-000004.json.tmp-0123456789ab").write_text("{")
    extra = ds / "train-000099.tar"  # a shard beyond the plan, from an older run
    extra.write_bytes(b"old")
    result = run(toy_root, out)
    assert result.kept == result.shards - 3
    assert tar_bytes(out) == reference
    assert not stale.exists() and not extra.exists()
    assert not [p for p in ds.rglob("*") if ".tmp-" in p.name]
    keys = pl.read_parquet(ds / "train.manifest.parquet")["key"].to_list()
    assert keys == ALL_KEYS


def test_rerun_removes_every_temp_of_its_split_and_no_other(toy_root: Path, tmp_path: Path):
    from pipeline.safe_write import temp_path

    out = tmp_path / "out"
    run(toy_root, out)
    ds = out / "toy"
    killed = [temp_path(ds / n) for n in ("train-000001.tar", "train.manifest.parquet", "train.quarantine.jsonl")]
    killed += [temp_path(ds / ".parts" / "train-000002.json"), temp_path(out / "index.parquet")]
    live = [temp_path(ds / "val-000000.tar"), temp_path(ds / "val.manifest.parquet"), temp_path(out / "index.parquet")]
    for p in killed + live:
        p.write_bytes(b"partial")
    hour_ago = time.time() - 2 * 3600
    os.utime(killed[-1], (hour_ago, hour_ago))  # an index temp this old belongs to a dead job
    run(toy_root, out)
    assert [p for p in killed if p.exists()] == []
    assert all(p.exists() for p in live)  # another split's job, or a job writing the index now


def test_changed_shard_size_replans_and_drops_old_shards(toy_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    first = run(toy_root, out)
    second = run(toy_root, out, shard_bytes=10**9)
    assert first.shards > 1 and second.shards == 1 and second.kept == 0
    assert sorted(p.name for p in (out / "toy").glob("*.tar")) == ["train-000000.tar"]
    with tarfile.open(out / "toy" / "train-000000.tar") as tf:
        assert len(tf.getnames()) == 27


def test_sigkill_midway_then_rerun_finishes(toy_root: Path, tmp_path: Path, reference):
    import polars as pl

    out = tmp_path / "out"
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[3]);"
        "from support.convert_fakes import TOY_READER, toy_taxonomy;"
        "from pipeline.convert.runner import convert_split;"
        f"convert_split(toy_taxonomy(), TOY_READER, Path(sys.argv[1]), 'train', Path(sys.argv[2]), shard_bytes={SMALL}, progress=False)"
    )
    env = {**os.environ, "TOY_READ_DELAY": "0.15"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(toy_root), str(out), str(Path(__file__).parents[2])], env=env)
    parts = out / "toy" / ".parts"
    deadline = time.time() + 60
    while time.time() < deadline and not (parts.is_dir() and list(parts.glob("*.json"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("*.json")))
    assert 1 <= done_before < len(reference)  # killed mid-way, not before or after
    result = run(toy_root, out)
    assert result.kept == done_before
    assert tar_bytes(out) == reference
    assert pl.read_parquet(out / "toy" / "train.manifest.parquet")["key"].to_list() == ALL_KEYS


def _damage(root: Path) -> dict[str, str]:
    """One sample per kind of bad input; returns key -> expected words in the reason."""
    labels, images = root / "train" / "labels", root / "train" / "images"
    (labels / "img_0001.png").unlink()
    (labels / "img_0002.png").write_bytes(b"not a png")
    Image.fromarray(np.ones((H + 1, W), np.uint8)).save(labels / "img_0004.png")
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(labels / "img_0005.png")
    (images / "img_0006.png").write_bytes(b"\x89PNG truncated")
    return {"img_0001": "missing", "img_0002": "cannot decode annotation", "img_0004": "but the image is",
            "img_0005": "unknown raw values [7]", "img_0006": "cannot decode image"}


def test_each_bad_input_is_quarantined_and_the_job_goes_on(toy_root: Path, tmp_path: Path):
    import polars as pl

    expected = _damage(toy_root)
    out = tmp_path / "out"
    result = run(toy_root, out)
    assert (result.written, result.quarantined) == (9 - len(expected), len(expected))
    entries = [json.loads(line) for line in (out / "toy" / "train.quarantine.jsonl").read_text().splitlines()]
    assert [e["key"] for e in entries] == [k for k in ALL_KEYS if k in expected]
    for e in entries:
        assert expected[e["key"]] in e["reason"]
        assert Path(e["file"]).name == ("img_0006.png" if e["key"] == "img_0006" else f"{e['key']}.png")
        assert Path(e["file"]).exists() or e["key"] == "img_0001"
    keys = pl.read_parquet(out / "toy" / "train.manifest.parquet")["key"].to_list()
    assert keys == [k for k in ALL_KEYS if k not in expected]
    for tar in (out / "toy").glob("*.tar"):
        with tarfile.open(tar) as tf:
            names = tf.getnames()
        assert not any(n.split(".")[0] in expected for n in names)


def test_label_values_out_of_range_are_quarantined(toy_root: Path, tmp_path: Path):
    # The taxonomy has 2 classes but the data holds raw id 3 mapped by a wider taxonomy's reader: the
    # writer's own range check catches a label the reader produced outside 0..K-1.
    from support.convert_fakes import toy_read

    from pipeline.convert.readers.base import FunctionReader

    narrow = toy_taxonomy(num_classes=2)
    wide = toy_taxonomy(num_classes=3)
    reader = FunctionReader(plan=TOY_READER.plan, read=lambda tax, item: toy_read(wide, item))
    result = convert_split(narrow, reader, toy_root, "train", tmp_path / "out", shard_bytes=SMALL, progress=False)
    assert result.quarantined == 9
    line = json.loads((tmp_path / "out" / "toy" / "train.quarantine.jsonl").read_text().splitlines()[0])
    assert "label values [2] outside 0..1" in line["reason"]
    assert not list((tmp_path / "out" / "toy").glob("*.tar"))


def test_strict_stops_at_the_first_bad_sample(toy_root: Path, tmp_path: Path):
    expected = _damage(toy_root)
    first = next(k for k in ALL_KEYS if k in expected)  # the first bad one in the order written
    out = tmp_path / "out"
    with pytest.raises(StrictStop) as err:
        run(toy_root, out, options=ShardOptions(strict=True))
    assert Path(err.value.path).stem == first and expected[first] in err.value.reason
    if first == "img_0001":
        assert err.value.reason == "annotation file missing"
    for tar in (out / "toy").glob("*.tar"):  # the shard holding it never appears
        with tarfile.open(tar) as tf:
            assert f"{first}.json" not in tf.getnames()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert not (out / "toy" / "train.manifest.parquet").exists()


def test_reader_bug_fails_loudly_with_the_shard_name(toy_root: Path, tmp_path: Path):
    images = toy_root / "train" / "images"
    (images / "img_0000.png").rename(images / "explode_0.png")
    [shard] = [p.name for p in plan_split(TOY_READER, toy_taxonomy(), toy_root, "train", SMALL)
               if "explode_0" in [i.key for i in p.items]]
    with pytest.raises(ShardFailed, match=rf"shard toy/{shard}\.tar failed at explode_0 .*RuntimeError: the reader has a bug"):
        run(toy_root, tmp_path / "out")
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp-" in p.name]


def test_sixteen_bit_labels_for_large_taxonomies(tmp_path: Path):
    root = tmp_path / "root"
    make_toy_dataset(root, 3, max_raw=300)
    tax = toy_taxonomy(num_classes=300)
    out = tmp_path / "out"
    run(root, out, tax=tax)
    import webdataset as wds

    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "toy").glob("*.tar")), shardshuffle=False))
    assert len(samples) == 3
    for s in samples:
        image = Image.open(io.BytesIO(s["label.png"]))
        assert image.mode in ("I;16", "I")
        label = np.array(image).astype(int)
        raw = np.array(Image.open(root / "train" / "labels" / f"{s['__key__']}.png")).astype(int)
        assert np.array_equal(label, np.where(raw == 0, 65535, raw - 1))
        assert json.loads(s["json"])["ignore_index"] == 65535


def test_missing_root_and_split_give_helpful_errors(toy_root: Path, tmp_path: Path):
    tax = toy_taxonomy()
    with pytest.raises(ConvertError, match="dataset root .*nowhere does not exist"):
        convert_split(tax, TOY_READER, tmp_path / "nowhere", "train", tmp_path / "out", shard_bytes=SMALL)
    with pytest.raises(ConvertError, match=r"no split 'test' .*train, val"):
        convert_split(tax, TOY_READER, toy_root, "test", tmp_path / "out", shard_bytes=SMALL)
    with pytest.raises(ConvertError, match=r"val/images not found"):
        convert_split(tax, TOY_READER, toy_root, "val", tmp_path / "out", shard_bytes=SMALL)


def test_ray_run_gives_the_same_bytes(ray_toy, toy_root: Path, tmp_path: Path, reference):
    out = tmp_path / "ray"
    result = run(toy_root, out, use_ray=True, workers=2)
    assert result.written == 9
    assert tar_bytes(out) == reference


def test_ray_errors_surface_with_file_and_shard(ray_toy, toy_root: Path, tmp_path: Path):
    expected = _damage(toy_root)
    with pytest.raises(StrictStop) as err:
        run(toy_root, tmp_path / "strict", options=ShardOptions(strict=True), use_ray=True)
    # Shards run in parallel, so whichever damaged sample's shard fails first stops the job: the
    # error must name that sample's file together with that file's own reason.
    key = Path(err.value.path).stem
    assert key in expected, err.value.path
    assert expected[key] in err.value.reason
    if key == "img_0001":
        assert err.value.reason == "annotation file missing"
    images = toy_root / "train" / "images"
    (images / "img_0000.png").rename(images / "explode_0.png")
    [shard] = [p.name for p in plan_split(TOY_READER, toy_taxonomy(), toy_root, "train", SMALL)
               if "explode_0" in [i.key for i in p.items]]
    with pytest.raises(ShardFailed, match=rf"{shard}\.tar failed at explode_0"):
        run(toy_root, tmp_path / "bug", use_ray=True)
