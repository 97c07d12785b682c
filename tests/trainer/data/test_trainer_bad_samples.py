"""One bad sample must not end a run: real corrupt tars (a member cut short, JPEG bytes that do not
decode, a flipped bit that decodes into wrong pixels) are skipped and named, counted in the logs and TensorBoard, resume still replays the same
steps, and only past the configured share of bad samples does training stop, with a clear error."""

import io
import json
import tarfile

import pytest

from pipeline.shards.read import find_shards
from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset
from trainer.config import TrainConfig
from trainer.data.augment import AugmentParams
from trainer.data.stream import Source, StreamSpec, iterate_batches, make_loader
from trainer.train import BadSampleLimit, run_training

SMALL = AugmentParams(short_edge=40, scale=(0.8, 1.2), crop=(32, 32))


def _members(path):
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _rewrite(path, members):
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _flip_scan_byte(jpeg: bytes) -> bytes:
    """One bit flipped halfway through the entropy-coded scan: the JPEG still decodes, into wrong pixels."""
    start = jpeg.index(b"\xff\xda")  # start of scan
    at = start + (len(jpeg) - start) // 2
    return jpeg[:at] + bytes([jpeg[at] ^ 0x10]) + jpeg[at + 1 :]


def corrupt_shards(root, dataset):
    """Shard 0: a bit of the first sample's JPEG scan data flipped (it still decodes). Shard 1: the
    second sample's JPEG is garbage, and its record predates checksums (nothing to verify it against).
    Shard 2: the file ends inside its third sample."""
    urls = find_shards(root, dataset, "training")
    members = _members(urls[0])
    first_jpg = next(i for i, (m, _) in enumerate(members) if m.name.endswith(".jpg"))
    flipped_info, jpeg = members[first_jpg]
    members[first_jpg] = (flipped_info, _flip_scan_byte(jpeg))
    _rewrite(urls[0], members)
    flipped_key = flipped_info.name.split(".")[0]

    members = _members(urls[1])
    jpgs = [i for i, (m, _) in enumerate(members) if m.name.endswith(".jpg")]
    bad_info, _ = members[jpgs[1]]
    members[jpgs[1]] = (bad_info, b"\xff\xd8\xff\xe0 this is not a JPEG stream" * 3)
    bad_jpeg_key = bad_info.name.split(".")[0]
    record_at = next(i for i, (m, _) in enumerate(members) if m.name == f"{bad_jpeg_key}.json")
    record = json.loads(members[record_at][1])
    record.pop("crc32", None)  # as written before shards carried checksums
    members[record_at] = (members[record_at][0], json.dumps(record, sort_keys=True).encode())
    _rewrite(urls[1], members)

    with open(urls[2], "rb") as f:
        data = f.read()
    offsets = []
    with tarfile.open(urls[2]) as tar:
        for m in tar.getmembers():
            offsets.append((m.name, m.offset_data, m.size))
    third = sorted({n.split(".")[0] for n, _, _ in offsets})[2]
    _, start, size = next(o for o in offsets if o[0].startswith(third))
    with open(urls[2], "wb") as f:
        f.write(data[: start + size // 2])  # cut in the middle of that member's bytes
    return {"flipped": (urls[0], flipped_key), "bad_jpeg": (urls[1], bad_jpeg_key), "truncated": (urls[2], third)}


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    root = tmp_path_factory.mktemp("dirty")
    write_synthetic_dataset(root, SyntheticSpec("a", samples=15, shards=3, size=(40, 40), fmt="jpg"))
    write_synthetic_dataset(root, SyntheticSpec("b", samples=6, shards=1, size=(40, 40), seed=1))
    return root, corrupt_shards(root, "a")


def _spec(root, **kw):
    sources = [Source(n, find_shards(root, n, "training")) for n in ("a", "b")]
    base = {"batch_size": 2, "batches": 24, "augment": SMALL, "resampled": False, "shuffle_buffer": 0}
    base.update(kw)
    return StreamSpec(sources, **base)


@pytest.mark.parametrize("workers", [0, 1])
def test_stream_skips_and_names_both_kinds_of_bad_sample(dirty, workers):
    root, bad = dirty
    batches = list(make_loader(_spec(root), num_workers=workers))
    assert len(batches) == 24 and all(b["image"].shape[0] == 2 for b in batches)
    skipped = [s for b in batches for s in b["skipped"]]
    found = {(s["shard"], s["key"]) for s in skipped}
    assert bad["bad_jpeg"] in found and bad["truncated"] in found
    jpeg_skip = next(s for s in skipped if s["key"] == bad["bad_jpeg"][1])
    assert "image cannot be decoded" in jpeg_skip["reason"]
    cut = next(s for s in skipped if s["key"] == bad["truncated"][1])
    assert "tar cannot be read" in cut["reason"]
    # the bad JPEG's slot holds a blank: no pixel of it trains anything
    for b in batches:
        for i, key in enumerate(b["keys"]):
            if key == bad["bad_jpeg"][1]:
                assert (b["target"][i] == -1).all() and (b["image"][i] == 0).all()
    # samples the shard reader gave up on never reach a batch; each counts as read
    from_reader = [s for s in skipped if "cannot be decoded" not in s["reason"]]
    assert sum(b["read"] for b in batches) == 48 + len(from_reader)


def test_flipped_jpeg_bytes_are_skipped_and_named_not_trained_as_garbled_pixels(dirty):
    from PIL import Image

    root, bad = dirty
    shard, key = bad["flipped"]
    with tarfile.open(shard) as tar:
        jpeg = tar.extractfile(f"{key}.jpg").read()
    Image.open(io.BytesIO(jpeg)).convert("RGB")  # decodes without complaint: only the checksum can tell
    batches = list(iterate_batches(_spec(root)))
    skipped = [s for b in batches for s in b["skipped"] if s["key"] == key]
    assert skipped and all(s["shard"] == shard for s in skipped)
    assert all(s["reason"].startswith("member .jpg is damaged: CRC32 ") for s in skipped)
    assert key not in {k for b in batches for k in b["keys"]}


def test_resume_skip_replays_the_same_batches_over_bad_samples(dirty):
    root, _ = dirty
    full = list(iterate_batches(_spec(root, resampled=True, shuffle_buffer=4, seed=5)))
    rest = list(iterate_batches(_spec(root, resampled=True, shuffle_buffer=4, seed=5, skip_batches=10)))
    assert len(rest) == 14
    for x, y in zip(full[10:], rest):
        assert x["keys"] == y["keys"] and (x["image"] == y["image"]).all() and x["skipped"] == y["skipped"]


def _config(root, out, **kw):
    base = {"out_dir": out, "shards": root, "datasets": [{"name": "a"}, {"name": "b"}], "model": "tiny",
            "short_edge": 40, "crop": (32, 32), "scale": (0.8, 1.2), "batch_size": 2, "steps": 10,
            "epoch_samples": 12, "lr": 1e-2, "workers": 0, "checkpoint_every": 1, "shuffle_buffer": 4,
            "max_bad_fraction": 0.5}
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("workers", [0, 1])
def test_training_survives_bad_samples_and_resume_matches(dirty, tmp_path, workers):
    root, bad = dirty
    table = tiny_table({"a": 4, "b": 4})
    cfg = _config(root, tmp_path, name="full", workers=workers)
    full = run_training(cfg, table=table, progress=False)
    assert full["step"] == 10 and full["samples_skipped"] > 0
    lines = [json.loads(x) for x in (cfg.run_dir / "skipped-rank0.jsonl").read_text().splitlines()]
    assert len(lines) == full["samples_skipped"]
    assert {(x["shard"], x["key"]) for x in lines} <= {bad["flipped"], bad["bad_jpeg"], bad["truncated"]}
    assert all(x["reason"] and x["step"] >= 1 for x in lines)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(cfg.run_dir / "tb"))
    events.Reload()
    assert events.Scalars("data/skipped_samples")[-1].value == full["samples_skipped"]

    resumed_cfg = cfg.model_copy(update={"name": "resumed"})
    first_skip = lines[0]["step"]
    start = max(1, first_skip - 1)  # resume just before the first bad sample
    resumed = run_training(resumed_cfg, table=table, progress=False,
                           resume=cfg.run_dir / "checkpoints" / f"step-{start:07d}.pt")
    assert [h["step"] for h in resumed["history"]] == list(range(start + 1, 11))
    for a, b in zip(full["history"][start:], resumed["history"]):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)
        assert a["skipped"] == b["skipped"]
    assert resumed["samples_skipped"] == full["samples_skipped"]
    assert resumed["samples_read"] == full["samples_read"]


def test_too_many_bad_samples_stop_with_a_clear_error(dirty, tmp_path):
    root, _ = dirty
    cfg = _config(root, tmp_path, name="strict", datasets=[{"name": "a"}], max_bad_fraction=0.01, steps=30)
    with pytest.raises(BadSampleLimit, match=r"unreadable .* over the limit max_bad_fraction=0.01; see .*skipped-rank"):
        run_training(cfg, table=tiny_table({"a": 4}), progress=False)
