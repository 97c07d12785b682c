"""Seeded per-dataset subsets (the paper's ~700K OpenImages / ~1M Objects365 samples), box targets that
must be CLIP image embeddings, and `epochs:` as passes over the data."""

import json
import tarfile

import numpy as np
import polars as pl
import pytest

from pipeline.errors import BadInput, NotFound
from pipeline.shards.read import find_shards
from tests.support.synthetic import SyntheticSpec, write_synthetic_dataset
from trainer.config import TrainConfig
from trainer.data.augment import AugmentParams
from trainer.data.stream import Source, StreamSpec, iterate_batches
from trainer.data.subsample import fraction_for, keep_share, split_size, subsample
from trainer.train import kept_fraction, with_epochs

SMALL = AugmentParams(short_edge=32, scale=(1.0, 1.0), crop=(24, 24))


def _records(root, dataset, split="training"):
    """key -> the sample's JSON record, from the tars."""
    records = {}
    for url in find_shards(root, dataset, split):
        with tarfile.open(url) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    records[member.name.split(".")[0]] = json.loads(tar.extractfile(member).read())
    return records


def _keys(root, dataset, split="training"):
    return sorted(_records(root, dataset, split))


def _write_manifest(root, dataset, split="training"):
    """The row-per-sample manifest `ssiw convert` writes beside the shards: here its key and
    classes_present columns, the ones the trainer reads."""
    records = _records(root, dataset, split)
    keys = sorted(records)
    pl.DataFrame({"dataset": [dataset] * len(keys), "split": [split] * len(keys), "key": keys,
                  "classes_present": [records[k]["classes_present"] for k in keys]}).write_parquet(
        root / dataset / f"{split}.manifest.parquet")
    return keys


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(root, SyntheticSpec("a", samples=40, shards=4, size=(24, 24)))
    write_synthetic_dataset(root, SyntheticSpec("boxes", samples=4, shards=1, supervision="box", size=(24, 24), seed=2))
    write_synthetic_dataset(root, SyntheticSpec("boxemb", samples=4, shards=1, supervision="box", size=(24, 24),
                                                seed=3, box_dim=8))
    return root


def test_the_subset_is_fixed_by_seed_and_key_and_holds_its_share():
    keys = [f"img-{i:06d}" for i in range(20_000)]
    share = np.array([keep_share(k, 7) for k in keys])
    assert ((share >= 0) & (share < 1)).all()
    kept = [k for k in keys if keep_share(k, 7) < 0.3]
    assert abs(len(kept) - 6000) < 4 * np.sqrt(20_000 * 0.3 * 0.7)  # binomial spread
    samples = [{"__key__": k} for k in keys]
    assert [s["__key__"] for s in subsample(samples, 0.3, 7)] == kept  # same keys, any order of reading
    assert [s["__key__"] for s in subsample(reversed(samples), 0.3, 7)] == kept[::-1]
    assert set(kept) < {s["__key__"] for s in subsample(samples, 0.5, 7)}  # a larger share keeps these too
    other = {s["__key__"] for s in subsample(samples, 0.3, 8)}
    assert len(other & set(kept)) < 0.5 * len(kept)  # another seed, another subset
    assert len(list(subsample(samples, 1.0, 7))) == len(keys)


def test_a_cap_becomes_the_share_of_the_split():
    assert fraction_for(None, 700_000, 944_037) == pytest.approx(700_000 / 944_037)
    assert fraction_for(None, 2_000_000, 1_000) == 1.0  # a cap above the split keeps all of it
    assert fraction_for(0.25, None, None) == 0.25 and fraction_for(None, None, None) == 1.0


def test_the_stream_trains_only_on_the_subset(shard_dir):
    keys = _keys(shard_dir, "a")
    subset = {k for k in keys if keep_share(k, 5) < 0.5}
    assert 0 < len(subset) < len(keys)
    spec = StreamSpec([Source("a", find_shards(shard_dir, "a", "training"), fraction=0.5, subsample_seed=5)],
                      batch_size=4, batches=30, augment=SMALL, shuffle_buffer=0)
    seen = {k for batch in iterate_batches(spec) for k in batch["keys"]}
    assert seen <= subset and len(seen) > len(subset) // 2


def test_max_samples_reads_the_split_size_from_its_manifest(shard_dir, tmp_path):
    cfg = TrainConfig(shards=str(shard_dir), datasets=[{"name": "a", "max_samples": 10}])
    (shard_dir / "a" / "training.manifest.parquet").unlink(missing_ok=True)
    with pytest.raises(NotFound, match="a/training.manifest.parquet"):
        kept_fraction(cfg, cfg.datasets[0])
    _write_manifest(shard_dir, "a")
    assert split_size(shard_dir, "a", "training") == 40
    assert kept_fraction(cfg, cfg.datasets[0]) == pytest.approx(10 / 40)
    with pytest.raises(ValueError, match="max_samples or fraction"):
        TrainConfig(shards="s", datasets=[{"name": "a", "max_samples": 10, "fraction": 0.5}])


def test_epochs_are_passes_over_the_kept_samples(shard_dir):
    _write_manifest(shard_dir, "a")
    cfg = TrainConfig(shards=str(shard_dir), datasets=[{"name": "a"}], epochs=100, batch_size=2, accumulate=2)
    resolved = with_epochs(cfg, world=2)
    assert resolved.epoch_samples == 40  # one pass: every sample of the split
    assert resolved.steps == 100 * 40 // (2 * 2 * 2)  # 100 passes of 40 samples, 8 samples per optimizer step
    half = TrainConfig(shards=str(shard_dir), datasets=[{"name": "a", "fraction": 0.5}], epochs=3, batch_size=4)
    assert with_epochs(half, 1).epoch_samples == 20 and with_epochs(half, 1).steps == 15
    plain = TrainConfig(shards=str(shard_dir), datasets=[{"name": "a"}], steps=7)
    assert with_epochs(plain, 1) is plain
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(shards="s", datasets=[{"name": "a"}], epochs=5, steps=100)


def test_box_targets_image_stops_on_boxes_without_clip_embeddings(shard_dir):
    def first_batch(name):
        spec = StreamSpec([Source(name, find_shards(shard_dir, name, "training"), require_box_embeddings=True)],
                          batch_size=2, batches=1, augment=SMALL)
        return next(iterate_batches(spec))

    assert first_batch("boxemb")["box_targets"][0].shape[1] == 8
    with pytest.raises(BadInput, match="no CLIP image embeddings.*--box-embeddings"):
        first_batch("boxes")


def test_a_run_with_box_targets_image_stops_on_text_only_boxes(shard_dir, tmp_path):
    from tests.support.synthetic import tiny_table
    from trainer.train import run_training

    cfg = TrainConfig(out_dir=tmp_path, shards=str(shard_dir), datasets=[{"name": "a"}, {"name": "boxes"}],
                      model="tiny", short_edge=24, crop=(24, 24), batch_size=2, steps=1, workers=0,
                      shuffle_buffer=0, box_targets="image")
    with pytest.raises(BadInput, match="boxes.*no CLIP image embeddings"):
        run_training(cfg, table=tiny_table({"a": 4, "boxes": 4}), progress=False)
