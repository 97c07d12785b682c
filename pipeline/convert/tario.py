"""Reproducible tar writing.

Every header field that could differ between runs or machines (mtime, owner, mode) is fixed, so
the same samples in the same order give the same bytes: shards can be compared with `cmp` and a
resumed job rewrites a lost shard exactly as it was.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


class DeterministicTarWriter:
    """Appends members to a tar file with fixed metadata (mtime 0, uid/gid 0, no names, 0644)."""

    def __init__(self, path: Path):
        self._file = open(path, "wb")  # noqa: SIM115 -- open for the writer's lifetime; close() closes it
        # A large copy buffer: tarfile copies each member in 16 KiB pieces by default, which costs
        # milliseconds per multi-MB image.
        self._tar = tarfile.open(  # noqa: SIM115 -- kept open across add() calls; close() closes it
            fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT, copybufsize=8 << 20)

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
        """Finish the archive; `safe_write.publish` then syncs it and renames it into place."""
        if self._file.closed:
            return
        try:
            self._tar.close()
        finally:
            self._file.close()
