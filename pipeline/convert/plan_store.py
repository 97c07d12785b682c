"""A split's plan in storage, so the driver holds no per-image or per-box data while tasks run.

`<out>/<dataset>/.plan/<split>/items.parquet` has one row per item in shard order, in row groups that
never straddle two shards (`shards.json` says which belong to which); each task reads only its own. Per-box arrays (ItemColumns.arrays) go to one
flat binary file each beside it (`<name>.bin`, dtype and row shape in the parquet metadata), in the
same order, so a task copies out just its shard's slice (one contiguous range per array). Written under
temporary names and renamed; a re-run plans again and overwrites.

The plan lives under the output location whatever it is, so every task that can write the output can
read its plan (machines that share nothing but the output). For an object-store output it is written
in the local temp folder first ($TMPDIR; up to about 1 GB for Objects365) and uploaded; tasks then
read their row groups and array slices with ranged GETs.
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

from pipeline import storage
from pipeline.convert.readers.base import WorkItem
from pipeline.convert.readers.plan_columns import ItemColumns, materialize
from pipeline.names import path_name
from pipeline.safe_write import atomic_path, write_bytes_atomic

PLAN_DIR = ".plan"
ITEMS_FILE = "items.parquet"
SHARDS_FILE = "shards.json"  # per shard: [first row group, number of row groups]
BATCH = 16_384  # rows per row group


def plan_folder(out_ds: storage.Location, split: str) -> storage.Location:
    """`<out_ds>/.plan/<split>`: a folder beside the shards, or a prefix in the same bucket."""
    # the folder is emptied and removed: it must be this split's own
    return storage.join(out_ds, PLAN_DIR, path_name(split, "split name"))


def upload(local: Path, store: str) -> None:
    """Copy a plan written locally to its object-store prefix: the arrays and shards.json first and
    items.parquet last, so a plan whose items are there is whole."""
    fs, prefix = storage.filesystem(store)
    files = sorted(local.iterdir(), key=lambda p: (p.name == ITEMS_FILE, p.name))
    for path in files:
        fs.put_file(str(path), f"{prefix}/{path.name}")


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


def write_to(store: storage.Location, *args) -> list[str]:
    """`write` into `store`: directly for a folder; for an object-store prefix, into a local temp folder
    that is uploaded and then removed."""
    if not storage.is_remote(store):
        return write(Path(store), *args)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ssiw-plan-") as local:
        prints = write(Path(local), *args)
        remove(store)  # an earlier run's plan of this split
        upload(Path(local), str(store))
    return prints


def _stamp(store: storage.Location) -> tuple:
    """What changes when the plan is rewritten: its items file's size and mtime (or ETag)."""
    items = storage.join(store, ITEMS_FILE)
    if storage.is_remote(items):
        fs, key = storage.filesystem(items)
        info = fs.info(key)
        return str(info.get("ETag") or info.get("LastModified")), int(info["size"])
    stat = os.stat(items)
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _open(store: str, stamp: tuple):
    """(ParquetFile, metadata, array layouts, shards) of a stored plan, once per process and plan version."""
    import pyarrow.parquet as pq

    items = storage.join(store, ITEMS_FILE)
    if storage.is_remote(store):
        fs, key = storage.filesystem(items)
        pf = pq.ParquetFile(fs.open(key, "rb"))  # footer and row groups by ranged reads
    else:
        pf = pq.ParquetFile(items)
    meta = pf.schema_arrow.metadata or {}
    layouts = {name: (np.dtype(dtype), tuple(shape))
               for name, (dtype, shape) in json.loads(meta.get(b"arrays", b"{}")).items()}
    shards = json.loads(storage.read_text(storage.join(store, SHARDS_FILE)))
    return pf, meta, layouts, shards


def _read_rows(store: storage.Location, name: str, dtype: np.dtype, shape: tuple, lo: int, hi: int) -> np.ndarray:
    """Rows [lo, hi) of the array file `<name>.bin`: a memory map of a local plan, one ranged read of a
    remote one (a shard's rows are contiguous, as the plan is written in shard order)."""
    if hi <= lo:
        return np.zeros((0, *shape), dtype)
    width = dtype.itemsize * int(np.prod(shape))
    path = storage.join(store, f"{name}.bin")
    if storage.is_remote(path):
        fs, key = storage.filesystem(path)
        data = fs.cat_file(key, start=lo * width, end=hi * width)
        return np.frombuffer(data, dtype=dtype).reshape(hi - lo, *shape)
    return np.memmap(path, dtype=dtype, mode="r", offset=lo * width, shape=(hi - lo, *shape))


def load_items(store: storage.Location, index: int) -> tuple[WorkItem, ...]:
    """The items of shard `index` (its row groups), exactly as the reader planned them."""
    pf, meta, layouts, shards = _open(str(store), _stamp(store))
    first, count = shards[index]
    table = pf.read_row_groups(list(range(first, first + count))).to_pydict()
    extras = [pickle.loads(b) for b in table["extra"]]
    if meta.get(b"mode") != b"columns":
        return tuple(extras)  # the WorkItems themselves
    blocks = {}
    for name, (dtype, shape) in layouts.items():
        starts = np.asarray(table[f"{name}.start"], dtype=np.int64)
        ends = starts + np.asarray(table[f"{name}.count"], dtype=np.int64)
        lo, hi = (int(starts.min()), int(ends.max())) if len(starts) else (0, 0)
        blocks[name] = lo, _read_rows(store, name, dtype, shape, lo, hi)
    rows = zip(table["key"], table["image"], table["annotation"], extras)
    shared = pickle.loads(meta[b"shared"])
    root = meta[b"root"].decode()
    out = []
    for n, (key, image, annotation, extra) in enumerate(rows):
        arrays = {}
        for name, (lo, block) in blocks.items():
            s, c = table[f"{name}.start"][n] - lo, table[f"{name}.count"][n]
            arrays[name] = block[s: s + c]
        out.append(materialize(key, image, annotation, root, shared, extra, arrays))
    return tuple(out)


def remove(folder: storage.Location) -> None:
    """Drop a split's stored plan once the split is assembled (it can be 1 GB for Objects365)."""
    if storage.is_remote(folder):
        fs, prefix = storage.filesystem(folder)
        for name in storage.list_files(folder):
            storage.remove_quietly(fs, f"{prefix}/{name}")
    elif Path(folder).is_dir():
        for p in Path(folder).iterdir():
            p.unlink(missing_ok=True)
        Path(folder).rmdir()
    _open.cache_clear()
