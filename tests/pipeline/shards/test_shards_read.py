"""pipeline/shards/read.py, the one shard reader: a tar cut short loses no sample uncounted (the
manifest says how many it held), and `ssiw eval` skips and reports a damaged sample as training does
instead of ending in a traceback."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_taxonomy
from typer.testing import CliRunner

from pipeline.convert.runner import convert_split
from pipeline.shards.read import find_shards, first_samples, manifest_keys, tar_samples
from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset


@pytest.fixture
def converted(tmp_path: Path) -> Path:
    """The toy dataset through `ssiw convert`'s runner: one tar of 9 samples and its manifest."""
    make_toy_dataset(tmp_path / "root", 9)
    out = tmp_path / "shards"
    convert_split(toy_taxonomy(), TOY_READER, tmp_path / "root", "train", out, shard_bytes=10**9, progress=False)
    return out


def _member_offsets(url: str) -> list[tuple[str, int, int, int]]:
    """(name, header offset, data offset, size) of each member."""
    with tarfile.open(url) as tar:
        return [(m.name, m.offset, m.offset_data, m.size) for m in tar.getmembers()]


def _read(url: str):
    skipped = []
    keys = [raw["__key__"] for raw in tar_samples(url, skipped.append)]
    return keys, skipped


def test_a_tar_cut_at_a_member_boundary_reports_every_sample_it_lost(converted):
    [url] = find_shards(converted, "toy", "train")
    listed = manifest_keys(url)
    assert len(listed) == 9
    fourth = next(offset for name, offset, _, _ in _member_offsets(url) if name.startswith(listed[3] + "."))
    data = Path(url).read_bytes()
    Path(url).write_bytes(data[:fourth])  # ends cleanly after three whole samples: tarfile sees no error
    keys, skipped = _read(url)
    assert keys == listed[:3]
    assert [s.key for s in skipped] == listed[3:]
    assert {s.reason for s in skipped} == {"shard train-000000.tar: cut short after 3 of 9 samples"}
    assert all(s.shard == url for s in skipped)


def test_a_tar_cut_inside_a_member_names_that_sample_and_counts_the_rest(converted):
    [url] = find_shards(converted, "toy", "train")
    listed = manifest_keys(url)
    _, _, start, size = next(m for m in _member_offsets(url) if m[0] == f"{listed[5]}.json")
    data = Path(url).read_bytes()
    Path(url).write_bytes(data[: start + size // 2])
    keys, skipped = _read(url)
    assert keys == listed[:5]
    assert skipped[0].key == listed[5] and skipped[0].reason.startswith("tar cannot be read past this member")
    assert [s.key for s in skipped[1:]] == listed[6:]
    assert {s.reason for s in skipped[1:]} == {"shard train-000000.tar: cut short after 5 of 9 samples"}


def test_training_counts_the_samples_a_cut_tar_lost(converted):
    from trainer.data.augment import AugmentParams
    from trainer.data.stream import Source, StreamSpec, iterate_batches

    [url] = find_shards(converted, "toy", "train")
    listed = manifest_keys(url)
    fourth = next(offset for name, offset, _, _ in _member_offsets(url) if name.startswith(listed[3] + "."))
    Path(url).write_bytes(Path(url).read_bytes()[:fourth])
    spec = StreamSpec([Source("toy", [url])], batch_size=1, batches=4, resampled=False, shuffle_buffer=0,
                      augment=AugmentParams(short_edge=24, scale=(1.0, 1.0), crop=(16, 16)))
    batches = list(iterate_batches(spec))
    # the 4th batch reads past the cut: the tar's lost samples come with it, then the tar starts over
    assert [b["keys"] for b in batches] == [[k] for k in [*listed[:3], listed[0]]]
    assert [b["skipped"] for b in batches[:3]] == [[], [], []]
    assert [s["key"] for s in batches[3]["skipped"]] == listed[3:]
    assert sum(b["read"] for b in batches) == 4 + 6  # each lost sample counts as read, for the skipped-fraction limit


def test_intact_converted_shards_verify_and_read_whole(converted):
    [url] = find_shards(converted, "toy", "train")
    keys, skipped = _read(url)
    assert keys == manifest_keys(url) and skipped == []
    first = next(iter(tar_samples(url, skipped.append)))
    assert set(json.loads(first["json"])["crc32"]) == {k for k in first if not k.startswith("__") and k != "json"}


def test_first_samples_stops_reading_once_the_wanted_ones_are_in(converted):
    [url] = find_shards(converted, "toy", "train")
    listed = manifest_keys(url)
    skipped = []
    found = first_samples(url, {listed[0], listed[1]}, skipped.append)
    assert set(found) == {listed[0], listed[1]} and skipped == []
    # a cut past the wanted samples is never met, so it is not reported
    fourth = next(offset for name, offset, _, _ in _member_offsets(url) if name.startswith(listed[3] + "."))
    Path(url).write_bytes(Path(url).read_bytes()[:fourth])
    assert set(first_samples(url, {listed[0]}, skipped.append)) == {listed[0]} and skipped == []


def _garble_second_jpeg_without_checksum(url: str) -> str:
    """The second sample's JPEG replaced by bytes that do not decode, its record without crc32 (a shard
    written before checksums): only decoding can find it. Returns its key."""
    with tarfile.open(url) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    key = sorted({m.name.split(".")[0] for m, _ in members})[1]
    out = []
    for info, data in members:
        if info.name == f"{key}.jpg":
            data = b"\xff\xd8\xff\xe0 not a JPEG stream" * 3
        elif info.name == f"{key}.json":
            record = json.loads(data)
            record.pop("crc32", None)
            data = json.dumps(record, sort_keys=True).encode()
        info.size = len(data)
        out.append((info, data))
    with tarfile.open(url, "w") as tar:
        for info, data in out:
            tar.addfile(info, io.BytesIO(data))
    return key


def test_eval_skips_and_reports_a_damaged_sample_and_a_truncated_shard(tmp_path):
    from pipeline.cli import app
    from trainer.config import TrainConfig
    from trainer.train import run_training

    shards = tmp_path / "shards"
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=8, shards=2, size=(40, 40), fmt="jpg"))
    cfg = TrainConfig(out_dir=tmp_path / "runs", name="r", shards=shards, datasets=[{"name": "a"}], model="tiny",
                      short_edge=40, crop=(32, 32), scale=(0.8, 1.2), batch_size=2, steps=2, epoch_samples=8,
                      workers=0, checkpoint_every=2, shuffle_buffer=0)
    run_training(cfg, table=tiny_table({"a": 4}), progress=False)
    urls = find_shards(shards, "a", "training")
    garbled = _garble_second_jpeg_without_checksum(urls[0])
    offsets = _member_offsets(urls[1])
    cut_key = sorted({name.split(".")[0] for name, _, _, _ in offsets})[2]
    _, _, start, size = next(m for m in offsets if m[0] == f"{cut_key}.jpg")
    Path(urls[1]).write_bytes(Path(urls[1]).read_bytes()[: start + size // 2])

    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", str(cfg.run_dir), "--dataset", "a", "--shards", str(shards),
                                      "--split", "training", "--multi-scales", "", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    # shard 1 ends inside its third sample; its fourth is lost without a trace (no manifest to count it by)
    assert results["images"] == 8 - 1 - 2
    assert results["samples_skipped"] == 2
    named = {(x["shard"], x["key"]): x["reason"] for x in results["skipped"]}
    assert "image cannot be decoded" in named[(urls[0], garbled)]
    assert named[(urls[1], cut_key)].startswith("tar cannot be read past this member")
    assert "2 unreadable samples skipped" in result.output


@pytest.mark.timeout(120)
def test_loader_workers_check_manifests_after_the_parent_did(converted):
    """The trainer reads a first sample in the parent before its loader forks workers; a worker must
    not hang on what the parent's manifest read left behind (polars' thread pool does not survive a fork)."""
    from trainer.data.augment import AugmentParams
    from trainer.data.stream import Source, StreamSpec, make_loader

    [url] = find_shards(converted, "toy", "train")
    assert next(iter(tar_samples(url, print)))["__key__"] == manifest_keys(url)[0]
    spec = StreamSpec([Source("toy", [url])], batch_size=2, batches=3, shuffle_buffer=0,
                      augment=AugmentParams(short_edge=24, scale=(1.0, 1.0), crop=(16, 16)))
    batches = list(make_loader(spec, num_workers=1))
    assert len(batches) == 3 and all(b["skipped"] == [] for b in batches)
