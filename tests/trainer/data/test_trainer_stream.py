"""The mixed WebDataset stream: ratios, augmentation geometry, determinism, resume skipping, errors."""

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.shard_format import SampleError, ShardRecord, sample_members
from pipeline.shards.read import find_shards
from tests.support.synthetic import SyntheticSpec, write_synthetic_dataset
from trainer.data.augment import AugmentParams, decode_sample
from trainer.data.stream import Source, StreamSpec, batch_counts, iterate_batches, make_loader

SMALL = AugmentParams(short_edge=48, scale=(0.75, 1.25), crop=(32, 32))


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(root, SyntheticSpec("a", samples=12, shards=3))
    write_synthetic_dataset(root, SyntheticSpec("b", samples=6, supervision="coarse", seed=1, fmt="jpg"))
    write_synthetic_dataset(root, SyntheticSpec("c", samples=6, supervision="box", seed=2, box_dim=8))
    return root


def _sources(root, ratios):
    return [Source(n, find_shards(root, n, "training"), r) for n, r in ratios.items()]


def test_batch_counts_follow_ratios():
    seq = batch_counts([3, 1], 4)
    assert [next(seq) for _ in range(5)] == [[3, 1]] * 5
    seq = batch_counts([1, 1, 1], 4)
    counts = np.array([next(seq) for _ in range(30)])
    assert (counts.sum(1) == 4).all()
    assert set(counts.sum(0)) == {40}  # 120 samples, an exact third each over 30 batches
    assert counts.min() >= 1 and counts.max() <= 2  # every batch as even as integers allow
    with pytest.raises(ValueError, match="ratios"):
        next(batch_counts([0, 0], 4))


def test_mixed_stream_respects_ratios_and_carries_supervision(shard_dir):
    spec = StreamSpec(_sources(shard_dir, {"a": 2, "b": 1, "c": 1}), batch_size=4, batches=6, augment=SMALL)
    for batch in iterate_batches(spec):
        assert sorted(batch["datasets"]) == ["a", "a", "b", "c"]
        sup = dict(zip(batch["datasets"], batch["supervision"].tolist()))
        assert sup == {"a": 0, "b": 1, "c": 2}
        assert batch["image"].shape == (4, 3, 32, 32) and batch["target"].shape == (4, 32, 32)
        box_i = batch["datasets"].index("c")
        assert (batch["target"][box_i] == -1).all()  # box samples carry no pixel labels
        assert batch["box_targets"][box_i].shape == (len(batch["boxes"][box_i]), 8)


def test_stream_is_deterministic_and_resume_skip_matches(shard_dir):
    spec = StreamSpec(_sources(shard_dir, {"a": 1, "b": 1}), batch_size=2, batches=5, augment=SMALL, seed=3)
    full = list(iterate_batches(spec))
    again = list(iterate_batches(spec))
    for x, y in zip(full, again):
        assert x["keys"] == y["keys"] and (x["image"] == y["image"]).all()
    spec.skip_batches = 3
    rest = list(iterate_batches(spec))
    assert len(rest) == 2
    for x, y in zip(full[3:], rest):
        assert x["keys"] == y["keys"] and (x["image"] == y["image"]).all() and (x["target"] == y["target"]).all()
    spec.skip_batches, spec.seed = 0, 4
    assert [b["keys"] for b in iterate_batches(spec)] != [b["keys"] for b in full]


def test_loader_workers_split_batches_in_order(shard_dir):
    spec = StreamSpec(_sources(shard_dir, {"a": 1}), batch_size=2, batches=4, augment=SMALL, shuffle_buffer=0)
    batches = list(make_loader(spec, num_workers=2))
    assert len(batches) == 4
    # Augmentation depends on the batch index only, so batch 0 of worker 0 equals the in-process batch 0.
    first = next(iter(iterate_batches(spec, worker=0, num_workers=2)))
    assert (batches[0]["image"] == first["image"]).all()


def _raw_sample(image: np.ndarray, label: np.ndarray, boxes, supervision="dense", fmt="PNG"):
    def enc(a, f):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=f)
        return buf.getvalue()

    h, w = image.shape[:2]
    record = ShardRecord(dataset="t", split="training", supervision=supervision, width=w, height=h, num_classes=4,
                         ignore_index=255, classes_present=[], boxes=boxes, box_embedding_encoder=None, sources={})
    ext = "png" if fmt == "PNG" else "jpg"
    members = sample_members("t-000001", ext, enc(image, fmt), record, None if label is None else enc(label, "PNG"))
    return {"__key__": "t-000001", **{name.split(".", 1)[1]: data for name, data in members}}


def test_boxes_and_labels_move_with_the_image():
    image = np.zeros((60, 90, 3), dtype=np.uint8)
    label = np.full((60, 90), 255, dtype=np.uint8)
    image[10:40, 20:50] = (255, 0, 0)
    label[10:40, 20:50] = 3
    raw = _raw_sample(image, label, [[20, 10, 50, 40, 3]])
    p = AugmentParams(short_edge=60, scale=(1.5, 2.0), crop=(64, 64), jitter=0.0, blur_prob=0.0)
    for seed in range(12):
        rng = np.random.default_rng(seed)
        s = decode_sample(raw, rng, p)
        assert s.image.shape == (64, 64, 3) and s.target.shape == (64, 64)
        assert set(np.unique(s.target)) <= {-1, 3}  # nearest resize: no invented classes
        for (x0, y0, x1, y1), cls in zip(s.boxes, s.box_classes):
            assert cls == 3
            inner = s.target[int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2]
            if inner.size:
                assert (inner == 3).all()
                assert s.image[int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2, 0].min() > 200
        red = s.image[..., 0] > 128
        assert ((s.target == 3) == red).mean() > 0.97  # image and label stay aligned (flips too)


def test_large_jpeg_decodes_at_reduced_scale_with_correct_output():
    rng = np.random.default_rng(0)
    image = np.zeros((1200, 1600, 3), dtype=np.uint8)
    image[:, 800:] = (0, 0, 255)
    label = np.zeros((1200, 1600), dtype=np.uint8)
    label[:, 800:] = 1
    raw = _raw_sample(image, label, None, fmt="JPEG")
    p = AugmentParams(short_edge=120, scale=(1.0, 1.0), crop=(160, 160), flip=False, jitter=0.0, blur_prob=0.0)
    s = decode_sample(raw, rng, p)
    assert s.image.shape == (160, 160, 3)
    assert (s.target[120:] == -1).all()  # padded below the 120-px-high image
    blue = s.image[:120, :, 2] > 128
    assert ((s.target[:120] == 1) == blue).mean() > 0.97


def test_bad_samples_name_the_key_and_reason():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    raw = _raw_sample(image, None, None)
    with pytest.raises(SampleError, match="t-000001.*dense supervision but no .label.png"):
        decode_sample(raw, np.random.default_rng(0), SMALL)
    raw = _raw_sample(image, np.zeros((8, 8), np.uint8), None)
    raw["png"] = b"not an image"
    with pytest.raises(SampleError, match="t-000001: image cannot be decoded"):
        decode_sample(raw, np.random.default_rng(0), SMALL)
    raw["json"] = b"{broken"
    with pytest.raises(SampleError, match="t-000001: .json record is not valid JSON"):
        decode_sample(raw, np.random.default_rng(0), SMALL)


def test_missing_shards_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope/training-\\*.tar"):
        find_shards(tmp_path, "nope", "training")


def test_supervision_override_for_ablations(shard_dir):
    """A coarse dataset can be trained as dense (L_HD alone); boxes can never become pixel labels."""
    sources = [Source("b", find_shards(shard_dir, "b", "training"), 1.0, supervision="dense")]
    batch = next(iterate_batches(StreamSpec(sources, batch_size=3, batches=1, augment=SMALL)))
    assert batch["supervision"].tolist() == [0, 0, 0]
    sources = [Source("c", find_shards(shard_dir, "c", "training"), 1.0, supervision="dense")]
    with pytest.raises(SampleError, match="box samples cannot be trained as 'dense'"):
        next(iterate_batches(StreamSpec(sources, batch_size=2, batches=1, augment=SMALL)))
