"""A seeded subset of a split, chosen while planning: `ssiw convert --max-samples / --fraction /
--subset-seed`, and a corpus recipe's `max_samples` / `fraction` / `seed`.

Each key gets a rank, 8 bytes of a BLAKE2b of the key keyed by the seed, and the subset is the items
of lowest rank (ties, if 64 bits ever tie, go to the smaller key). So the subset is a pure function of
the split's key set and the seed: the order a reader lists its items in changes nothing, and with one
seed a smaller cap's subset lies inside a larger cap's. The count is exact: `max_samples` items (or
the whole split when it is smaller), or `fraction` of the split rounded to the nearest item (at least one).

Only the kept items' positions are held (an int64 array), never a second list of items: the planner
keeps indexing the reader's own list or columns (plan.py, plan_columns.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import BadInput


@dataclass(frozen=True)
class Subset:
    max_samples: int | None = None
    fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.max_samples is None) == (self.fraction is None):
            raise BadInput("a subset needs max_samples or fraction (one of them)")
        if self.max_samples is not None and self.max_samples < 1:
            raise BadInput(f"max_samples must be at least 1, not {self.max_samples}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise BadInput(f"fraction must be in (0, 1], not {self.fraction}")

    def size(self, n: int) -> int:
        """How many of a split's n items the subset keeps."""
        if n == 0:
            return 0
        if self.max_samples is not None:
            return min(n, self.max_samples)
        return min(n, max(1, math.floor(self.fraction * n + 0.5)))

    def tag(self) -> str:
        """The subset in words: part of every shard's fingerprint and of the summary's notes."""
        cap = f"max_samples={self.max_samples}" if self.max_samples is not None else f"fraction={self.fraction:g}"
        return f"{cap} seed={self.seed}"


def subset_from(max_samples: int | None, fraction: float | None, seed: int) -> Subset | None:
    """The subset the options ask for; None when neither cap is given."""
    if max_samples is None and fraction is None:
        return None
    if max_samples is not None and fraction is not None:
        raise BadInput("give --max-samples or --fraction, not both")
    return Subset(max_samples, fraction, seed)


def _rank(seed_key: bytes, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8, key=seed_key).digest(), "big")


def ranks(keys: Sequence[str], seed: int) -> np.ndarray:
    """Each key's rank under `seed` (uint64; 14 MB for Objects365's 1.7M keys)."""
    seed_key = f"ssiw-subset-{seed}".encode()
    return np.fromiter((_rank(seed_key, k) for k in keys), dtype=np.uint64, count=len(keys))


def choose(keys: Sequence[str], subset: Subset) -> np.ndarray:
    """Positions in `keys` of the items the subset keeps, ascending."""
    keep = subset.size(len(keys))
    if keep == len(keys):
        return np.arange(len(keys), dtype=np.int64)
    rank = ranks(keys, subset.seed)
    cut = np.partition(rank, keep - 1)[keep - 1]  # the largest rank kept
    below = np.flatnonzero(rank < cut)
    at_cut = sorted(np.flatnonzero(rank == cut).tolist(), key=keys.__getitem__)
    return np.sort(np.concatenate([below, np.asarray(at_cut[: keep - len(below)], dtype=np.int64)]))
