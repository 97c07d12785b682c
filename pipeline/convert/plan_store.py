"""A split's plan on disk, so the driver holds no per-image or per-box data while tasks run.

`<out>/<dataset>/.plan/<split>/items.parquet` has one row per item in shard order, in row groups that
never straddle two shards (`shards.json` says which belong to which); each task reads only its own. Per-box arrays (ItemColumns.arrays) go to one
flat binary file each beside it (`<name>.bin`, dtype and row shape in the parquet metadata), in the
same order, so a task memory-maps them and copies out just its slices. Written under temporary
names and renamed; a re-run plans again and overwrites.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pipeline.convert.readers.base import WorkItem
from pipeline.convert.readers.plan_columns import ItemColumns, materialize
from pipeline.names import path_name
from pipeline.safe_write import atomic_path, write_bytes_atomic

PLAN_DIR = ".plan"
ITEMS_FILE = "items.parquet"
SHARDS_FILE = "shards.json"  # per shard: [first row group, number of row groups]
BATCH = 16_384  # rows per row group


def plan_folder(out_ds, split: str) -> Path:
    """Beside the output on a filesystem. For an object-store output the plan stays on the driver's
    local disk ($SSIW_PLAN_DIR, else the temp folder): tasks memory-map it, which needs a file, so with
    an s3:// output every Ray node must see that folder (one node, or a shared mount)."""
    from pipeline import storage

    path_name(split, "split name")  # the folder is emptied and removed: it must be this split's own
    if not storage.is_remote(out_ds):
        return Path(out_ds) / PLAN_DIR / split
    import tempfile

    base = Path(os.environ.get("SSIW_PLAN_DIR") or tempfile.gettempdir()) / "ssiw-plans"
    return base / hashlib.sha256(str(out_ds).encode()).hexdigest()[:16] / split


def _gather_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Positions of the concatenated slices [starts[i], starts[i] + counts[i]) in order."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    offsets = np.repeat(starts - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + offsets


def shard_rows_fingerprint(h, rows: list[tuple], sizes: list[int]) -> None:
    for row, size in zip(rows, sizes):
        h.update(json.dumps([*row, size], sort_keys=True, default=str).encode())


def write(folder: Path, planned: list[WorkItem] | ItemColumns, order: np.ndarray, groups: list[tuple[int, int]],
          sizes: np.ndarray, options: str) -> list[str]:
    """Write the plan: items in `order`, cut at `groups` (start, end) into row groups. Returns each
    shard's fingerprint (a hash of everything its task will read, plus the options)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    remove(folder)  # an earlier run's plan, or its temps after a kill: the folder is this split's alone
    folder.mkdir(parents=True, exist_ok=True)
    columns = planned if isinstance(planned, ItemColumns) else None
    names = sorted(columns.arrays) if columns else []
    schema_fields = [("key", pa.string()), ("image", pa.string()), ("annotation", pa.string()),
                     ("extra", pa.binary())]
    for name in names:
        schema_fields += [(f"{name}.start", pa.int64()), (f"{name}.count", pa.int64())]
    meta = {b"mode": b"columns" if columns else b"items"}
    if columns:
        meta[b"shared"] = pickle.dumps(columns.shared)
        meta[b"root"] = columns.root.encode()
        meta[b"arrays"] = json.dumps({n: [columns.arrays[n][0].dtype.str, list(columns.arrays[n][0].shape[1:])]
                                      for n in names}).encode()
    schema = pa.schema(schema_fields, metadata=meta)

    written = dict.fromkeys(names, 0)
    shared_json = json.dumps(columns.shared, sort_keys=True, default=str) if columns else ""
    prints = []
    row_groups: list[list[int]] = []  # per shard: [first row group, row groups]
    # Entered first, published last: the bins are complete before items.parquet names them.
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(folder / ITEMS_FILE))
        handles = {name: stack.enter_context(open(stack.enter_context(atomic_path(folder / f"{name}.bin")), "wb"))
                   for name in names}
        with pq.ParquetWriter(tmp, schema) as writer:
            for start, end in groups:
                h = hashlib.sha256(options.encode())
                h.update(shared_json.encode())
                first = sum(n for _, n in row_groups)
                # Bounded batches: one huge shard (tiny images, a big --shard-size) must not hold all
                # its rows' Python objects at once.
                for lo in range(start, end, BATCH):
                    hi = min(end, lo + BATCH)
                    writer.write_table(_batch(planned, columns, names, order[lo:hi], sizes[lo:hi], h,
                                              handles, written, schema), row_group_size=BATCH)
                row_groups.append([first, -(-(end - start) // BATCH)])
                prints.append(h.hexdigest()[:16])
    write_bytes_atomic(folder / SHARDS_FILE, json.dumps(row_groups).encode())
    return prints


def _batch(planned, columns, names, rows, sizes, h, handles, written, schema):
    """One batch of rows in plan order as an Arrow table; per-box slices appended to their files."""
    import pyarrow as pa

    if columns:
        keys = [columns.keys[i] for i in rows]
        images = [columns.images[i] for i in rows]
        anns = [columns.annotations[i] for i in rows] if columns.annotations else [None] * len(rows)
        extras = [columns.row_extra(int(i)) for i in rows]
    else:  # plain WorkItems: stored whole; hashed as plan._fingerprint hashes them
        picked = [planned[i] for i in rows]
        keys = [it.key for it in picked]
        images = [it.image for it in picked]
        anns = [it.annotation for it in picked]
        extras = [{**it.extra, **{k: v for k, v in (("sources", it.sources), ("index", it.index),
                                                     ("error", it.error)) if v}} for it in picked]
    shard_rows_fingerprint(h, list(zip(keys, images, anns, extras)), sizes.tolist())
    data = {"key": keys, "image": images, "annotation": anns,
            "extra": [pickle.dumps(e, protocol=5) for e in (extras if columns else picked)]}
    for name in names:
        values, starts, counts = columns.arrays[name]
        s, c = starts[rows], counts[rows]
        chunk = np.ascontiguousarray(values[_gather_index(s, c)])
        h.update(name.encode() + c.tobytes() + chunk.tobytes())
        handles[name].write(chunk.tobytes())
        new_starts = written[name] + np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64)
        data[f"{name}.start"], data[f"{name}.count"] = new_starts, c.astype(np.int64)
        written[name] += int(c.sum())
    return pa.table(data, schema=schema)


@functools.lru_cache(maxsize=8)
def _open(store: str, stamp: tuple):
    """(ParquetFile, metadata, memory maps) of a stored plan, once per process and plan version."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(Path(store) / ITEMS_FILE)
    meta = pf.schema_arrow.metadata or {}
    maps = {}
    for name, (dtype, shape) in json.loads(meta.get(b"arrays", b"{}")).items():
        path = Path(store) / f"{name}.bin"
        row = int(np.prod(shape)) if shape else 1
        width = np.dtype(dtype).itemsize * row
        n = path.stat().st_size // width if width else 0
        maps[name] = np.memmap(path, dtype=dtype, mode="r", shape=(n, *shape)) if n else np.zeros((0, *shape), dtype)
    shards = json.loads((Path(store) / SHARDS_FILE).read_text())
    return pf, meta, maps, shards


def load_items(store: str, index: int) -> tuple[WorkItem, ...]:
    """The items of shard `index` (its row groups), exactly as the reader planned them."""
    stamp = os.stat(Path(store) / ITEMS_FILE)
    pf, meta, maps, shards = _open(str(store), (stamp.st_mtime_ns, stamp.st_size))
    first, count = shards[index]
    table = pf.read_row_groups(list(range(first, first + count))).to_pydict()
    extras = [pickle.loads(b) for b in table["extra"]]
    if meta.get(b"mode") != b"columns":
        return tuple(extras)  # the WorkItems themselves
    rows = zip(table["key"], table["image"], table["annotation"], extras)
    shared = pickle.loads(meta[b"shared"])
    root = meta[b"root"].decode()
    out = []
    for n, (key, image, annotation, extra) in enumerate(rows):
        arrays = {}
        for name, values in maps.items():
            s, c = table[f"{name}.start"][n], table[f"{name}.count"][n]
            arrays[name] = values[s: s + c]
        out.append(materialize(key, image, annotation, root, shared, extra, arrays))
    return tuple(out)


def remove(folder: Path) -> None:
    """Drop a split's stored plan once the split is assembled (it can be 1 GB for Objects365)."""
    if folder.is_dir():
        for p in folder.iterdir():
            p.unlink(missing_ok=True)
        folder.rmdir()
    _open.cache_clear()
