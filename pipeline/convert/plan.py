"""The planner: list a split's work once, estimate sizes, cut it into shards deterministically.

The plan is a pure function of the input files (their keys, paths and sizes) and the options, so
a re-run after a crash cuts the same shards and can keep the ones already finished. Each shard
carries a fingerprint of its items; a finished shard whose fingerprint no longer matches is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from pipeline.convert.order import in_shard_order
from pipeline.convert.readers.base import Reader, WorkItem
from pipeline.errors import BadInput
from pipeline.shard_format import KEY_PATTERN, KEY_RULE
from pipeline.taxonomy.schema import DatasetTaxonomy

DEFAULT_SHARD_SIZE = "1GB"
# Per sample, a tar holds about three members, each with a 512-byte header and padding.
TAR_OVERHEAD_PER_SAMPLE = 3 * 1024

_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}


def parse_size(text: str) -> int:
    """'1GB' -> 10**9, '500MB', '2GiB', '123456' (bytes). Decimal units unless 'iB'."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?[iI]?)[bB]?\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise BadInput(f"cannot read shard size {text!r}: use a number with a unit, e.g. 1GB, 500MB, 2GiB")
    size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size <= 0:
        raise BadInput(f"shard size {text!r} must be positive")
    return size


@dataclass(frozen=True)
class ShardPlan:
    """One shard's worth of work: what a single task converts into `<split>-NNNNNN.tar`."""

    dataset: str
    split: str
    index: int
    items: tuple[WorkItem, ...]
    est_bytes: int
    fingerprint: str

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}"


def list_items(reader: Reader, tax: DatasetTaxonomy, root: Path, split: str) -> list[WorkItem]:
    """Run the reader's plan once, sorted by key; keys must be unique and tar-safe."""
    items = sorted(reader.plan(tax, Path(root), split), key=lambda it: it.key)
    bad = [it.key for it in items if not KEY_PATTERN.fullmatch(it.key)]
    if bad:
        raise BadInput(f"{tax.name}/{split}: keys may hold only {KEY_RULE}: {bad[:5]}")
    dupes = sorted({a.key for a, b in pairwise(items) if a.key == b.key})
    if dupes:
        raise BadInput(f"{tax.name}/{split}: keys planned more than once: {dupes[:5]}")
    return items


def _file_size(path: str | None) -> int:
    if not path:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # read() will quarantine it with the real reason


def estimate_sizes(items: list[WorkItem], threads: int = 16) -> list[int]:
    """Bytes a sample will take in a shard: image + annotation (the label PNG is about as big) + headers."""
    paths = [p for it in items for p in (it.image, it.annotation)]
    with ThreadPoolExecutor(threads) as pool:  # stat is I/O-bound; threads hide network-FS latency
        sizes = list(pool.map(_file_size, paths))
    return [sizes[2 * i] + sizes[2 * i + 1] + TAR_OVERHEAD_PER_SAMPLE for i in range(len(items))]


def _fingerprint(items: list[WorkItem], sizes: list[int], options: str) -> str:
    h = hashlib.sha256(options.encode())
    for it, size in zip(items, sizes):
        # The typed fields join the format's extra data as one mapping, as they were before they had
        # their own fields, so shards finished by an earlier version still count as done.
        typed = {"sources": it.sources, "index": it.index, "error": it.error}
        data = {**it.extra, **{k: v for k, v in typed.items() if v}}
        h.update(json.dumps([it.key, it.image, it.annotation, data, size], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cut_shards(
    tax: DatasetTaxonomy, split: str, items: list[WorkItem], sizes: list[int], target: int, options: str = ""
) -> list[ShardPlan]:
    """Greedy, in the items' order: a shard closes before the item that would take it past `target`."""
    groups: list[tuple[int, int]] = []  # (start, end) into items
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > target:
            groups.append((start, i))
            start, total = i, 0
        total += size
    if start < len(items):
        groups.append((start, len(items)))
    return [
        ShardPlan(
            dataset=tax.name,
            split=split,
            index=n,
            items=tuple(items[a:b]),
            est_bytes=sum(sizes[a:b]),
            fingerprint=_fingerprint(items[a:b], sizes[a:b], options),
        )
        for n, (a, b) in enumerate(groups)
    ]


def plan_split(
    reader: Reader, tax: DatasetTaxonomy, root: Path, split: str, target_bytes: int, options: str = ""
) -> list[ShardPlan]:
    # Shards are cut in seeded random order, not key order, so each is a random sample of the split.
    items = in_shard_order(list_items(reader, tax, root, split), tax.name, split)
    return cut_shards(tax, split, items, estimate_sizes(items), target_bytes, options)
