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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from pipeline.convert.absent import absent_folders
from pipeline.convert.order import in_shard_order
from pipeline.convert.readers.base import Reader, WorkItem
from pipeline.convert.subset import Subset, choose
from pipeline.errors import BadInput
from pipeline.names import path_name
from pipeline.shard_format import KEY_PATTERN, KEY_RULE
from pipeline.taxonomy.schema import DatasetTaxonomy

DEFAULT_SHARD_SIZE = "1GB"
# A shard also closes at this many samples: files that are missing weigh only their tar headers, so
# without it a split whose images are absent packs into one shard whose task holds every item and
# quarantine entry at once. A 1 GB shard of ADE-sized samples holds about 16,000.
DEFAULT_SHARD_SAMPLES = 20_000
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
    """One shard's worth of work: what a single task converts into `<split>-NNNNNN.tar`.

    Small by design: with a stored plan (`store`), the task loads its own items from disk
    (row group `index`), so neither the driver nor the task's arguments carry per-image data."""

    dataset: str
    split: str
    index: int
    count: int  # items in the shard
    est_bytes: int
    fingerprint: str
    store: str | None = None  # folder of the stored plan (plan_store); None: items travel inline
    inline: tuple[WorkItem, ...] = ()

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)

    @property
    def items(self) -> tuple[WorkItem, ...]:
        """The shard's items; read from the stored plan each time (call it once, in the task)."""
        if self.store is None:
            return self.inline
        from pipeline.convert.plan_store import load_items

        return load_items(self.store, self.index)


class Plans(list):
    """A split's ShardPlans, in order, plus the reader's planning counts for the summary and the
    folders found absent (pipeline.convert.absent)."""

    def __init__(self, plans=(), notes: dict[str, int] | None = None, absent: list[tuple[str, int]] | None = None):
        super().__init__(plans)
        self.notes = dict(notes or {})
        self.absent = list(absent or [])


def shard_name(split: str, index: int) -> str:
    return f"{path_name(split, 'split name')}-{index:06d}"


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


MISSING = -1  # the size _file_size gives a file it cannot stat


def _file_size(path: str | None) -> int:
    if not path:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return MISSING  # weighs nothing in a shard; read() will quarantine it with the real reason


def _stat_chunk(paths: list) -> list[int]:
    return [_file_size(p) for p in paths]


def _stat_all(paths: list, threads: int = 16, chunk: int = 2048):
    """Sizes of many files: threads hide network-FS latency; paths go in chunks, so 3.5M files make
    1.7k futures rather than 3.5M (a future costs about 2 KB: 7 GB for Objects365's images)."""
    import numpy as np

    out = np.empty(len(paths), dtype=np.int64)
    with ThreadPoolExecutor(threads) as pool:
        starts = range(0, len(paths), chunk)
        for start, sizes in zip(starts, pool.map(_stat_chunk, (paths[s: s + chunk] for s in starts))):
            out[start: start + len(sizes)] = sizes
    return out


def _locate_missing(reader, planned, paths: list, stat) -> Iterator[str]:
    """Files not at their planned path: sized where the reader will find them (Format.locate: Objects365's
    archives unpack images elsewhere than the JSON says); yields where the still-missing ones belong (a
    generator, so 1.7M missing paths are counted per folder, never held)."""
    import numpy as np

    locate = getattr(reader, "locate", None)
    shared = getattr(planned, "shared", {}) or {}
    for i in np.flatnonzero(stat == MISSING):
        where = locate(paths[i], shared) if locate else None
        size = _file_size(where) if where else MISSING
        if size == MISSING:
            yield where or paths[i]
        else:
            stat[i] = size


def _fingerprint(items: list[WorkItem], sizes: list[int], options: str) -> str:
    h = hashlib.sha256(options.encode())
    for it, size in zip(items, sizes):
        # The typed fields join the format's extra data as one mapping, as they were before they had
        # their own fields, so shards finished by an earlier version still count as done.
        typed = {"sources": it.sources, "index": it.index, "error": it.error}
        data = {**it.extra, **{k: v for k, v in typed.items() if v}}
        h.update(json.dumps([it.key, it.image, it.annotation, data, size], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cut_groups(sizes, target: int, max_count: int = DEFAULT_SHARD_SAMPLES) -> list[tuple[int, int]]:
    """Greedy, in the items' order: a shard closes before the item that would take it past `target`
    bytes or `max_count` items."""
    groups: list[tuple[int, int]] = []  # (start, end) into the ordered items
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (total + size > target or i - start >= max_count):
            groups.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups


def cut_shards(
    tax: DatasetTaxonomy, split: str, items: list[WorkItem], sizes: list[int], target: int, options: str = "",
    max_count: int = DEFAULT_SHARD_SAMPLES,
) -> list[ShardPlan]:
    """Shards whose items travel inline (small splits, tests, benchmarks)."""
    return [
        ShardPlan(
            dataset=tax.name,
            split=split,
            index=n,
            count=b - a,
            est_bytes=sum(sizes[a:b]),
            fingerprint=_fingerprint(items[a:b], sizes[a:b], options),
            inline=tuple(items[a:b]),
        )
        for n, (a, b) in enumerate(cut_groups(sizes, target, max_count))
    ]


def _release_freed_memory() -> None:
    """Hand the planner's freed heap back to the OS: the driver then runs for hours holding only the
    ShardPlans, instead of the index's high-water mark (glibc keeps freed small blocks otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _check_keys(where: str, keys: list[str], order: list[int]) -> None:
    bad = [keys[i] for i in order if not KEY_PATTERN.fullmatch(keys[i])]
    if bad:
        raise BadInput(f"{where}: keys may hold only {KEY_RULE}: {bad[:5]}")
    dupes = sorted({keys[a] for a, b in pairwise(order) if keys[a] == keys[b]})
    if dupes:
        raise BadInput(f"{where}: keys planned more than once: {dupes[:5]}")


def _item_paths(planned, kept) -> list:
    """Image and annotation path of each kept item, in turn (what _stat_all sizes)."""
    from pipeline.convert.readers.plan_columns import ItemColumns

    if isinstance(planned, ItemColumns):
        anns = planned.annotations
        return [p for i in kept for p in (planned.images[i], anns[i] if anns is not None else None)]
    return [p for i in kept for p in (planned[i].image, planned[i].annotation)]


def plan_split(
    reader: Reader,
    tax: DatasetTaxonomy,
    root: Path,
    split: str,
    target_bytes: int,
    options: str = "",
    store: Path | str | None = None,
    max_samples: int = DEFAULT_SHARD_SAMPLES,
    subset: Subset | None = None,
) -> Plans:
    """Plan a split into shards. With `store` (a folder or object-store prefix), the plan is written there and each shard
    carries only a reference to its row group; without, items travel inline in the ShardPlans. With
    `subset`, only its seeded share of the split's items is planned (pipeline/convert/subset.py)."""
    import numpy as np

    from pipeline.convert import plan_store
    from pipeline.convert.readers.plan_columns import ItemColumns

    planned = reader.plan(tax, Path(root), split)
    notes = dict(getattr(planned, "notes", {}) or {})
    if not isinstance(planned, ItemColumns):
        planned = list(planned)
        keys = [it.key for it in planned]
    else:
        keys = planned.keys
    _check_keys(f"{tax.name}/{split}", keys, sorted(range(len(keys)), key=keys.__getitem__))
    # Positions of the items planned, ascending: every item, or the subset's (no copy of the items).
    kept = range(len(keys)) if subset is None else choose(keys, subset).tolist()
    if subset is not None:
        notes[f"not in the seeded subset ({subset.tag()})"] = len(keys) - len(kept)
    paths = _item_paths(planned, kept)
    # Shards are cut in seeded random order, not key order, so each is a random sample of the split.
    order = np.asarray(in_shard_order(kept, tax.name, split, key=keys.__getitem__), dtype=np.int64)
    # Bytes a sample will take in a shard: image + annotation (the label PNG is about as big) + headers.
    stat = _stat_all(paths)
    absent = absent_folders(str(root), _locate_missing(reader, planned, paths, stat))
    del paths
    stat = np.maximum(stat, 0)
    # stat holds the kept items in position order; searchsorted finds each ordered item's place there.
    place = np.searchsorted(np.asarray(kept, dtype=np.int64), order)
    sizes = (stat[0::2] + stat[1::2] + TAR_OVERHEAD_PER_SAMPLE)[place]
    del place
    groups = cut_groups(sizes.tolist(), target_bytes, max_samples)
    if store is None:
        if isinstance(planned, ItemColumns):
            items = [planned.item(i) for i in order.tolist()]
        else:
            items = [planned[i] for i in order.tolist()]
        return Plans(cut_shards(tax, split, items, sizes.tolist(), target_bytes, options, max_samples), notes, absent)
    prints = plan_store.write_to(store, planned, order, groups, sizes, options)
    del planned, keys, order, kept
    _release_freed_memory()
    return Plans(
        [
            ShardPlan(dataset=tax.name, split=split, index=n, count=b - a, est_bytes=int(sizes[a:b].sum()),
                      fingerprint=fp, store=str(store))
            for n, ((a, b), fp) in enumerate(zip(groups, prints))
        ],
        notes,
        absent,
    )
