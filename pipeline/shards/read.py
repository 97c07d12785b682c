"""Raw samples out of shard tars, with every unreadable one named instead of ending the run.

webdataset's own tar stage either re-raises (the run dies on one truncated member) or swallows the
error (the sample is lost silently). Here a tar that breaks mid-way yields what it read before the
break, and reports the shard, the key it was reading and the reason to a callback; the stream then
moves on to its next shard. The order of samples depends only on the bytes on disk, so a resumed run
meets the same breaks at the same places.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pipeline.errors import BadInput


@dataclass(frozen=True)
class SkippedSample:
    """One sample the trainer could not use: where it lives and why."""

    shard: str
    key: str
    reason: str

    def as_dict(self) -> dict:
        return {"shard": self.shard, "key": self.key, "reason": self.reason}


def split_member_name(name: str) -> tuple[str, str]:
    """'dir/abc-000001.label.png' -> ('dir/abc-000001', 'label.png'): the extension starts at the
    first dot of the file name (keys never hold dots, see shards/README.md)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def tar_samples(url: str, on_skip: Callable[[SkippedSample], None]) -> Iterator[dict]:
    """Samples of one tar in member order: {'__key__', '__url__', ext: bytes, ...}.

    A member that cannot be read (truncated tar, bad header) ends this tar: the sample being read is
    reported through on_skip and dropped, the samples before it are kept."""
    current: dict | None = None
    key = "?"
    try:
        from pipeline import storage

        with storage.open_read(url) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                key, ext = split_member_name(info.name)
                if key.startswith("__") or not ext:
                    continue  # tar metadata members, not samples
                data = tar.extractfile(info).read()
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                current[ext] = data
    except (tarfile.TarError, OSError, EOFError) as e:
        on_skip(SkippedSample(url, key, f"tar cannot be read past this member: {type(e).__name__}: {e}"))
        return
    if current is not None:
        yield current


def expand_shards(shards: Iterable[dict], on_skip: Callable[[SkippedSample], None], max_empty: int) -> Iterator[dict]:
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
