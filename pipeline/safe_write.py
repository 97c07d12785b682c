"""The one way the project writes a file: never a half-written file under its final name.

A file is written under `<final>.tmp-<12 hex digits>` in the final's own folder, flushed to disk,
renamed over the final name (atomic within one filesystem) and the folder synced, so a kill or a
power cut leaves either the old file, the new one, or a stray temp. `remove_stale_temps` knows
exactly those temp names, so a re-run can clear what a killed run left without touching anything
else.

Every function also takes an object-store URL (`s3://bucket/key`, through fsspec; see
pipeline.storage), with the same guarantee: an object store shows an object only once its upload (one
PUT, or a multipart upload's completion) or its copy is complete. Small files are one whole-object
PUT. A file built by a writer (`temp_path` + `publish`: the tar writer, `atomic_path`) is staged in
the local temporary folder, uploaded to `<final>.tmp-<random>` and copied to its final key, so a kill
leaves at most a temp object with the same recognisable name, which `remove_stale_temps` clears.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import storage

_TEMP = re.compile(r"^(?P<final>.+)\.tmp-[0-9a-f]{12}$")
STAGING_PREFIX = "ssiw-staging-"
_STAGING = re.compile(rf"^{STAGING_PREFIX}(?P<pid>\d+)-.+\.tmp-[0-9a-f]{{12}}$")


def _temp_name(name: str) -> str:
    return f"{name}.tmp-{secrets.token_hex(6)}"


def temp_path(final: storage.Location) -> Path:
    """`<final>.tmp-<random>`: unique per attempt, so two writers never share a temp. For an object-store
    final, a local staging file of that name in the temporary folder ($TMPDIR), published by `publish`."""
    if storage.is_remote(final):
        import tempfile

        # The writer's pid in the name: a staging file whose process is gone is an orphan (a task killed
        # or cancelled mid-write), which remove_orphaned_staging removes.
        return Path(tempfile.gettempdir()) / _temp_name(f"{STAGING_PREFIX}{os.getpid()}-{storage.name(final)}")
    final = Path(final)
    return final.with_name(_temp_name(final.name))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_orphaned_staging(folder: Path | None = None) -> list[Path]:
    """Delete the local staging files (of object-store writes) whose writing process no longer runs on
    this machine: what a task killed with its worker, or cancelled, leaves in its temp folder."""
    import tempfile

    folder = Path(folder or tempfile.gettempdir())
    removed = []
    for path in folder.glob(f"{STAGING_PREFIX}*"):
        m = _STAGING.match(path.name)
        if m is None or _pid_alive(int(m["pid"])):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return sorted(removed)


def is_temp(path: storage.Location) -> bool:
    return _TEMP.match(storage.name(path)) is not None


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


def publish(tmp: Path, final: storage.Location) -> storage.Location:
    """Sync a finished temp to disk and rename it over `final`, then sync the folder so the new
    name survives a crash too. For writers that manage their temp themselves (the tar writer).
    An object-store final: upload to a temp key, copy to the final key, remove both temps."""
    if storage.is_remote(final):
        return _publish_remote(Path(tmp), str(final))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(Path(final).parent)
    return Path(final)


def _publish_remote(tmp: Path, final: str) -> str:
    fs, path = storage.filesystem(final)
    temp_key = _temp_name(path)
    try:
        fs.put_file(str(tmp), temp_key)  # multipart for large files: nothing visible until complete
        fs.copy(temp_key, path)
    finally:
        storage.remove_quietly(fs, temp_key)
        tmp.unlink(missing_ok=True)
    return final


@contextmanager
def atomic_path(final: storage.Location) -> Iterator[Path]:
    """Yield a temp path to write `final` to (for pyarrow, matplotlib, PIL, torch.save...); on a
    clean exit it is published under `final`, on an exception it is removed and `final` untouched.
    Libraries that guess the format from the suffix need it given (`format="png"`): the temp's
    name ends in `.tmp-<hex>`."""
    if not storage.is_remote(final):
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        yield tmp
        publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(final: storage.Location, data: bytes) -> storage.Location:
    if storage.is_remote(final):  # one whole-object PUT: the object appears only when complete
        fs, path = storage.filesystem(final)
        fs.pipe_file(path, data)
        return final
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text_atomic(final: storage.Location, text: str) -> storage.Location:
    return write_bytes_atomic(final, text.encode("utf-8"))


def remove_stale_temps(
    folder: storage.Location, finals: re.Pattern | None = None, min_age_s: float = 0.0
) -> list[storage.Location]:
    """Delete the temps `atomic_path` makes in `folder` (not below it): all of them, or those whose
    final name fully matches `finals`, and only those last modified `min_age_s` ago or more (for a
    folder another live job may be writing into). Returns what was removed."""
    if storage.is_remote(folder):
        return _remove_stale_temp_objects(str(folder), finals, min_age_s)
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


def _remove_stale_temp_objects(folder: str, finals: re.Pattern | None, min_age_s: float) -> list[str]:
    fs, path = storage.filesystem(folder)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    now = time.time()
    removed = []
    for entry in entries:
        m = _TEMP.match(storage.name(entry["name"]))
        if entry["type"] != "file" or m is None or (finals is not None and not finals.fullmatch(m["final"])):
            continue
        modified = entry.get("LastModified")
        if min_age_s and modified is not None and now - modified.timestamp() < min_age_s:
            continue
        storage.remove_quietly(fs, entry["name"])
        removed.append(storage.join(folder, storage.name(entry["name"])))
    return sorted(removed)


def save_figure(fig, final: storage.Location, dpi: int) -> storage.Location:
    """Save a matplotlib figure (format from the final's suffix, PNG without one), then close it."""
    import matplotlib.pyplot as plt

    suffix = Path(storage.name(final)).suffix
    try:
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=suffix[1:] or "png", dpi=dpi)
    finally:
        plt.close(fig)
    return final
