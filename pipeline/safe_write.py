"""The one way the project writes a file: never a half-written file under its final name.

A file is written under `<final>.tmp-<12 hex digits>` in the final's own folder, flushed to disk,
renamed over the final name (atomic within one filesystem) and the folder synced, so a kill or a
power cut leaves either the old file, the new one, or a stray temp. `remove_stale_temps` knows
exactly those temp names, so a re-run can clear what a killed run left without touching anything
else.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMP = re.compile(r"^(?P<final>.+)\.tmp-[0-9a-f]{12}$")


def temp_path(final: Path) -> Path:
    """`<final>.tmp-<random>`: unique per attempt, so two writers never share a temp."""
    final = Path(final)
    return final.with_name(f"{final.name}.tmp-{secrets.token_hex(6)}")


def is_temp(path: Path) -> bool:
    return _TEMP.match(Path(path).name) is not None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles: the file itself is synced
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> Path:
    """Sync a finished temp to disk and rename it over `final`, then sync the folder so the new
    name survives a crash too. For writers that manage their temp themselves (the tar writer)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(Path(final).parent)
    return Path(final)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path to write `final` to (for pyarrow, matplotlib, PIL, torch.save...); on a
    clean exit it is published under `final`, on an exception it is removed and `final` untouched.
    Libraries that guess the format from the suffix need it given (`format="png"`): the temp's
    name ends in `.tmp-<hex>`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        yield tmp
        publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(final: Path, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text_atomic(final: Path, text: str) -> Path:
    return write_bytes_atomic(final, text.encode("utf-8"))


def remove_stale_temps(folder: Path, finals: re.Pattern | None = None, min_age_s: float = 0.0) -> list[Path]:
    """Delete the temps `atomic_path` makes in `folder` (not below it): all of them, or those whose
    final name fully matches `finals`, and only those last modified `min_age_s` ago or more (for a
    folder another live job may be writing into). Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    removed = []
    for path in folder.iterdir():
        m = _TEMP.match(path.name)
        if m is None or (finals is not None and not finals.fullmatch(m["final"])):
            continue
        try:
            if min_age_s and now - path.stat().st_mtime < min_age_s:
                continue
            path.unlink()
        except FileNotFoundError:  # its writer published or removed it meanwhile
            continue
        removed.append(path)
    return sorted(removed)


def save_figure(fig, final: Path, dpi: int) -> Path:
    """Save a matplotlib figure (format from the final's suffix, PNG without one), then close it."""
    import matplotlib.pyplot as plt

    final = Path(final)
    try:
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=final.suffix[1:] or "png", dpi=dpi)
    finally:
        plt.close(fig)
    return final
