"""The order samples are written in: a seeded random permutation of the split, so every shard is a
random sample of the whole split.

Real keys come in runs (ADE20K train is ordered by scene, Cityscapes by city): shards cut in key
order hold one scene each, and a trainer's shuffle buffer cannot mix across more than a few of
them. Each key's place is a keyed hash of (seed, dataset, split, key), so the order is a pure
function of the keys: the same input gives the same shards, byte for byte, on any machine, and a
sample added to or removed from the split does not move the others relative to each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TypeVar

ORDER_SEED = b"ssiw-shard-order-1"  # changing it reshuffles every split (and so rewrites every shard)

T = TypeVar("T")


def order_key(dataset: str, split: str, key: str) -> bytes:
    """Where a key goes in its split: 8 bytes of a BLAKE2b keyed by the seed (uniform, stable)."""
    h = hashlib.blake2b(f"{dataset}\0{split}\0{key}".encode(), digest_size=8, key=ORDER_SEED)
    return h.digest()


def in_shard_order(items: Iterable[T], dataset: str, split: str, key=lambda item: item.key) -> list[T]:
    """Items in the order they are written to the split's shards (keys are unique, so ties between
    hashes, if any, are broken by the key itself)."""
    return sorted(items, key=lambda it: (order_key(dataset, split, key(it)), key(it)))
