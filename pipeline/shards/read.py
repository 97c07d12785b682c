"""The one reader of shard tars: finding a split's shards, reading their samples back, and naming
every sample it cannot give.

Training, evaluation, pseudo-labelling and the preview all read through here, local or s3:// (via
pipeline.storage), with one key rule (shard_format.split_member_name) and one error policy: a sample
that cannot be used is not yielded but reported to the caller's `on_skip` as a SkippedSample naming
the shard, the key and the reason. What the caller does with it (count it, log it, stop past a limit)
is the caller's business. Reasons a sample is skipped here:

- the tar breaks mid-way (truncated, bad header): the sample being read is reported, the samples
  before it are kept and the rest of that tar is given up (webdataset's own tar stage either
  re-raises, ending the run, or loses the sample silently);
- a member's bytes do not match the CRC32 its record lists (a flipped bit in a JPEG decodes into
  wrong pixels; only the checksum notices);
- the tar ends before every sample its split's manifest lists for it (a tar cut at a member
  boundary reads as a clean end): each missing key is reported, "cut short after N of M samples".

The order of samples depends only on the bytes on disk, so a resumed run meets the same breaks at
the same places.
"""

from __future__ import annotations

import functools
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pipeline import storage
from pipeline.errors import BadInput, NotFound
from pipeline.shard_format import (
    checksum_problem,
    manifest_name,
    shard_pattern,
    split_member_name,
    split_of_shard,
)


@dataclass(frozen=True)
class SkippedSample:
    """One sample a reader could not use: where it lives and why."""

    shard: str
    key: str
    reason: str

    def as_dict(self) -> dict:
        return {"shard": self.shard, "key": self.key, "reason": self.reason}


OnSkip = Callable[[SkippedSample], None]


def find_shards(shard_dir: storage.Location, dataset: str, split: str) -> list[str]:
    """The tars of one dataset split, e.g. shards/ade20k-150/training-000000.tar or s3://bucket/prefix/..."""
    dataset_dir = storage.join(storage.as_location(shard_dir), dataset)
    urls = split_shards(dataset_dir, split)
    if not urls:
        there = shard_splits(dataset_dir)
        found = f"; {dataset} has: {', '.join(there)}" if there else f"; no shards of {dataset} there at all"
        raise NotFound(f"no shards match {storage.join(dataset_dir, shard_pattern(split))}{found}")
    return urls


def shard_splits(dataset_dir: storage.Location) -> list[str]:
    """The splits a dataset folder has shards of (from the names <split>-NNNNNN.tar)."""
    names = (storage.name(u) for u in storage.glob(storage.as_location(dataset_dir), "*-*.tar"))
    return sorted({split_of_shard(n) for n in names if re.fullmatch(r".+-\d{6}\.tar", n)})


def split_shards(dataset_dir: storage.Location, split: str) -> list[str]:
    """The tars of one split inside a dataset's folder, sorted (empty when there are none)."""
    return [str(u) for u in storage.glob(storage.as_location(dataset_dir), shard_pattern(split))]


@functools.lru_cache(maxsize=16)
def _manifest_shards(manifest: str, size: int, pid: int):
    """(shard, key) columns of a split's manifest as an Arrow table. Cached, since every read of
    every shard of the split asks; the size makes a rewritten manifest a new entry. The pid keeps a
    loader worker from using what its parent read before the fork, and pyarrow reads it on this
    thread: polars' thread pool does not survive a fork, so a worker using it would hang."""
    import pyarrow.parquet as pq

    with storage.open_read(storage.as_location(manifest)) as f:
        columns = set(pq.read_schema(f).names)
        if not {"shard", "key"} <= columns:
            return None
        f.seek(0)
        return pq.read_table(f, columns=["shard", "key"], use_threads=False)


def manifest_keys(url: str) -> list[str] | None:
    """The keys the split's manifest lists for this shard, in tar order; None without a manifest
    (synthetic or hand-made shards) or with one that lacks the shard and key columns (only a
    converted manifest says which tar holds which key)."""
    location = storage.as_location(url)
    name = storage.name(location)
    manifest = storage.join(storage.parent(location), manifest_name(split_of_shard(name)))
    try:
        size = storage.size(manifest)
    except FileNotFoundError:
        return None
    import pyarrow.compute as pc

    table = _manifest_shards(str(manifest), size, os.getpid())
    if table is None:
        return None
    return table.filter(pc.equal(table["shard"], name))["key"].to_pylist()


def tar_samples(url: str, on_skip: OnSkip, *, locate: bool = False) -> Iterator[dict]:
    """Samples of one tar in member order: {'__key__', '__url__', suffix: bytes, ...}. With `locate`,
    also '__members__': suffix -> (offset, size) of the member's bytes in the tar.

    Skips (reported to on_skip, never yielded): a sample whose member bytes fail their CRC32, the
    sample being read when the tar breaks (the rest of the tar is given up), and every sample the
    split's manifest lists for this tar that it did not hold."""
    expected = manifest_keys(url)
    whole: set[str] = set()  # keys read whole, used or skipped
    broken: list[str] = []  # the key being read when the tar broke
    for raw in _grouped_members(url, on_skip, broken, locate):
        whole.add(raw["__key__"])
        problem = checksum_problem(raw)
        if problem is not None:
            on_skip(SkippedSample(url, raw["__key__"], problem))
            continue
        yield raw
    if expected is not None:
        _report_missing(url, expected, whole, set(broken), on_skip)


def _grouped_members(url: str, on_skip: OnSkip, broken: list[str], locate: bool) -> Iterator[dict]:
    """Members grouped by key, as a tar's members come. A read error ends the tar: the sample being
    read is reported and its key appended to `broken`."""
    current: dict | None = None
    key = "?"
    try:
        with storage.open_read(url) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                key, suffix = split_member_name(info.name)
                if key.startswith("__") or not suffix:
                    continue  # tar metadata members, not samples
                if current is not None and current["__key__"] != key:
                    yield current  # whole before this member's bytes are read: a cut there cannot cost it
                    current = None
                data = tar.extractfile(info).read()
                if current is None:
                    current = {"__key__": key, "__url__": url}
                    if locate:
                        current["__members__"] = {}
                current[suffix] = data
                if locate:
                    current["__members__"][suffix] = (info.offset_data, info.size)
    except (tarfile.TarError, OSError, EOFError) as e:
        broken.append(key)
        on_skip(SkippedSample(url, key, f"tar cannot be read past this member: {type(e).__name__}: {e}"))
        return
    if current is not None:
        yield current


def _report_missing(url: str, expected: list[str], whole: set[str], broken: set[str], on_skip: OnSkip) -> None:
    """One skip per sample the manifest lists for this tar that it did not give (the broken one is
    reported already)."""
    missing = [k for k in expected if k not in whole and k not in broken]
    if not missing:
        return
    read = sum(1 for k in expected if k in whole)
    reason = f"shard {storage.name(url)}: cut short after {read} of {len(expected)} samples"
    for key in missing:
        on_skip(SkippedSample(url, key, reason))


def shard_samples(urls: Iterable[str], on_skip: OnSkip) -> Iterator[dict]:
    """The samples of several tars, one after the other."""
    for url in urls:
        yield from tar_samples(url, on_skip)


def expand_shards(shards: Iterable[dict], on_skip: OnSkip, max_empty: int) -> Iterator[dict]:
    """webdataset-style stage: {'url': ...} dicts in, samples out. Stops with a clear error after
    `max_empty` shards in a row gave no sample at all (every shard broken: nothing to train on)."""
    empty_in_a_row = 0
    for shard in shards:
        url = shard["url"]
        got = False
        for sample in tar_samples(url, on_skip):
            got = True
            yield sample
        empty_in_a_row = 0 if got else empty_in_a_row + 1
        if empty_in_a_row >= max_empty:
            raise BadInput(f"{url}: {empty_in_a_row} shard reads in a row gave no readable sample; "
                           "the shards of this dataset are broken or empty")


def first_samples(url: str, keys: set[str], on_skip: OnSkip) -> dict[str, dict]:
    """The wanted samples of one tar (raw, as tar_samples gives them), read from its start and
    closed as soon as every wanted key is in: a preview of a 1 GB object costs a few MB of reads."""
    found: dict[str, dict] = {}
    samples = tar_samples(url, on_skip)
    try:
        for raw in samples:
            if raw["__key__"] in keys:
                found[raw["__key__"]] = raw
                if found.keys() >= keys:
                    break
    finally:
        samples.close()
    return found
