"""Reproducible tar writing and write-then-rename helpers.

Every header field that could differ between runs or machines (mtime, owner, mode) is fixed, so
the same samples in the same order give the same bytes: shards can be compared with `cmp` and a
resumed job rewrites a lost shard exactly as it was.
"""

from __future__ import annotations

import io
import os
import secrets
import tarfile
from pathlib import Path

TMP_MARK = ".tmp-"


def temp_name(final: Path) -> Path:
    """`<final>.tmp-<random>`: unique per attempt, and recognisable as stale after a crash."""
    return final.with_name(f"{final.name}{TMP_MARK}{secrets.token_hex(6)}")


def is_temp(path: Path) -> bool:
    return TMP_MARK in path.name


def write_atomic(final: Path, data: bytes) -> None:
    """Write bytes to a temp name, flush to disk, then rename over `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DeterministicTarWriter:
    """Appends members to a tar file with fixed metadata (mtime 0, uid/gid 0, no names, 0644)."""

    def __init__(self, path: Path):
        self._file = open(path, "wb")
        # A large copy buffer: tarfile copies each member in 16 KiB pieces by default, which costs
        # milliseconds per multi-MB image.
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT, copybufsize=8 << 20)

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        """Finish the archive and flush it to disk, so a rename after this publishes a whole file."""
        if self._file.closed:
            return
        try:
            self._tar.close()
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
