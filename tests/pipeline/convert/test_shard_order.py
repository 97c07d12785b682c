"""Shards are written in a seeded random order of the split: a pure function of the keys, and mixed
enough that the trainer's stream draws consecutive samples from one scene about as rarely as a
random order would (bench/bench_shuffle.py prints the full table)."""

from __future__ import annotations

import random

from bench.bench_shuffle import ade_like_keys, random_rate, same_scene_rate, write_shards
from pipeline.convert.order import in_shard_order, order_key


def by_key(keys, dataset="ade20k-150", split="training"):
    return in_shard_order(keys, dataset, split, key=lambda k: k)


def test_order_is_a_pure_function_of_the_keys():
    keys = [f"ADE_train_{i:08d}" for i in range(1, 2001)]
    order = by_key(keys)
    assert sorted(order) == keys and len(set(order)) == len(keys)  # a permutation, keys still unique
    shuffled = list(keys)
    random.Random(1).shuffle(shuffled)
    assert by_key(shuffled) == order  # however the reader listed them
    assert order != keys and order != keys[::-1]
    # Adding or removing samples does not move the others relative to each other.
    fewer = [k for k in keys if not k.endswith("7")]
    assert by_key(fewer) == [k for k in order if not k.endswith("7")]
    # The dataset and split are part of the seed: another split is shuffled differently.
    assert by_key(keys, split="validation") != order
    # The documented hash: 8 bytes of BLAKE2b keyed with the seed, over dataset NUL split NUL key.
    import hashlib

    want = hashlib.blake2b(
        b"ade20k-150\0training\0ADE_train_00000001", digest_size=8, key=b"ssiw-shard-order-1"
    )
    assert order_key("ade20k-150", "training", "ADE_train_00000001") == want.digest()


def test_stream_over_written_shards_mixes_scenes_like_a_random_order(tmp_path):
    from trainer.config import TrainConfig
    from trainer.data.stream import DEFAULT_SHUFFLE_BUFFER, StreamSpec

    assert TrainConfig.model_fields["shuffle_buffer"].default == DEFAULT_SHUFFLE_BUFFER >= 1024
    assert StreamSpec([], 1, 1).shuffle_buffer == DEFAULT_SHUFFLE_BUFFER

    keys, scene = ade_like_keys(samples=4000, scenes=60)
    base = random_rate(scene)
    key_order = write_shards(tmp_path / "key", keys, per_shard=200, shuffled=False)
    seeded = write_shards(tmp_path / "seeded", keys, per_shard=200, shuffled=True)
    assert len(key_order) == len(seeded) >= 20
    old = same_scene_rate(key_order, scene, DEFAULT_SHUFFLE_BUFFER, draws=4000)
    new = same_scene_rate(seeded, scene, DEFAULT_SHUFFLE_BUFFER, draws=4000)
    assert old > 3 * base  # the runs are real: key-ordered shards stay clumped even with the buffer
    assert new <= 1.5 * base, (new, base)
