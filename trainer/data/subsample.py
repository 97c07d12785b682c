"""A seeded subset of a dataset's samples, and a split's size in samples.

The paper "samples some data" of OpenImages V6 (about 700K images) and Objects365 (over 1M) for
training. A config asks for that per dataset with `max_samples` (a cap) or `fraction`; the stream then
keeps a sample when a hash of (subsample_seed, key) falls below the fraction. The choice depends on
the key and the seed only, not on the shard, the rank, the loader worker or the epoch, so every
process keeps the same subset and a resumed run keeps it too. A cap is turned into the fraction
cap / split size, so the subset holds the cap in expectation (binomial: +-0.1% at 700K of 944K).

A split's size is its manifest's row count (`<dataset>/<split>.manifest.parquet`, written by
`ssiw convert`): it also turns `epochs:` (passes over the data) into samples and steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from pipeline.errors import NotFound

_SCALE = float(1 << 64)


def keep_share(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, key): uniform over keys, independent between seeds."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def subsample(samples: Iterable[dict], fraction: float, seed: int) -> Iterator[dict]:
    """Raw webdataset samples whose key is in the seeded subset of `fraction` of all keys."""
    if fraction >= 1.0:
        yield from samples
        return
    for sample in samples:
        if keep_share(str(sample.get("__key__", "")), seed) < fraction:
            yield sample


def split_size(shards, dataset: str, split: str) -> int:
    """Samples in a converted split: the row count of its manifest (local or object storage)."""
    from pipeline import storage

    location = storage.join(storage.as_location(shards), dataset, f"{split}.manifest.parquet")
    if not storage.exists(location):
        raise NotFound(f"{location}: no manifest, so the size of {dataset}/{split} is unknown "
                       "(`ssiw convert` writes it; max_samples and epochs need it)")
    return storage.read_parquet(location).height


def fraction_for(fraction: float | None, max_samples: int | None, size: int | None) -> float:
    """The share of a split to keep: `fraction`, or `max_samples` of `size` (all of it when it is fewer)."""
    if max_samples is not None:
        return min(1.0, max_samples / max(size or 0, 1))
    return 1.0 if fraction is None else fraction
