"""Where shards live: a local folder or an object-store URL (`s3://bucket/prefix`), read through fsspec.

A location is a `Path` / plain path string (local) or a URL string. Remote stores take their endpoint and
credentials from the standard AWS variables and files (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
~/.aws/credentials, ...), which s3fs reads through botocore, so MinIO, Ceph or any S3-compatible store works.
Local paths go through the same functions, so callers have one code path. Writing goes through
`pipeline.safe_write`, which takes the same locations.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

Location = str | Path


def is_remote(location: Location) -> bool:
    """True for URLs such as s3://bucket/key (file:// counts as local)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def as_location(text: str | Path | None) -> Location | None:
    """A CLI argument as a location: URLs stay strings (Path would fold `s3://` into `s3:/`)."""
    if text is None:
        return None
    return str(text) if is_remote(text) else Path(text)


def filesystem(location: Location):
    """(fsspec filesystem, path inside it) for a location."""
    import fsspec

    if not is_remote(location):
        return fsspec.filesystem("file"), str(Path(location).resolve())
    # No listing cache: shards are written by other processes (Ray workers, an earlier killed run), and a
    # stale listing would hide or resurrect them.
    fs, path = fsspec.core.url_to_fs(str(location), use_listings_cache=False)
    return fs, path


def join(base: Location, *parts: str) -> Location:
    """base/part/part: a Path for local bases, a URL string for remote ones."""
    if not is_remote(base):
        return Path(base).joinpath(*parts)
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def name(location: Location) -> str:
    """The last path component (file name) of a location."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def _with_protocol(fs, path: str, like: Location) -> Location:
    if not is_remote(like):
        return Path(path)
    return fs.unstrip_protocol(path)


def glob(base: Location, pattern: str) -> list[Location]:
    """Sorted matches of `pattern` (relative, e.g. '*/*.manifest.parquet') under base."""
    if not is_remote(base):
        return sorted(Path(base).glob(pattern))
    fs, root = filesystem(base)
    return sorted(_with_protocol(fs, p, base) for p in fs.glob(f"{root.rstrip('/')}/{pattern}"))


def bucket_exists(location: Location) -> bool:
    """For a URL: whether its bucket (the first path component) exists and is visible with these credentials."""
    fs, path = filesystem(location)
    return bool(fs.exists(path.split("/", 1)[0]))


def exists(location: Location) -> bool:
    if not is_remote(location):
        return Path(location).exists()
    fs, path = filesystem(location)
    return fs.exists(path)


def size(location: Location) -> int:
    if not is_remote(location):
        return Path(location).stat().st_size
    fs, path = filesystem(location)
    return int(fs.size(path))


def open_read(location: Location) -> IO[bytes]:
    """A binary file object for reading (streams; remote objects are fetched in blocks)."""
    if not is_remote(location):
        return open(location, "rb")
    fs, path = filesystem(location)
    return fs.open(path, "rb")


def read_bytes(location: Location) -> bytes:
    with open_read(location) as f:
        return f.read()


def read_text(location: Location) -> str:
    return read_bytes(location).decode()


def read_parquet(location: Location):
    """A polars DataFrame from a local or remote parquet file."""
    import io

    import polars as pl

    if not is_remote(location):
        return pl.read_parquet(location)
    return pl.read_parquet(io.BytesIO(read_bytes(location)))


def makedirs(folder: Location) -> None:
    """Create a local folder (object stores have no folders to make)."""
    if not is_remote(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)


def parent(location: Location) -> Location:
    """The folder holding a location."""
    if not is_remote(location):
        return Path(location).parent
    return str(location).rstrip("/").rsplit("/", 1)[0]


def remove_quietly(fs, path: str) -> None:
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass


def remove(location: Location) -> None:
    """Delete a file or object; absent is fine."""
    if not is_remote(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    remove_quietly(fs, path)


def list_files(folder: Location) -> dict[str, int]:
    """File name -> size for the files directly in a folder (empty when it does not exist)."""
    if not is_remote(folder):
        folder = Path(folder)
        if not folder.is_dir():
            return {}
        return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    fs, path = filesystem(folder)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return {}
    return {name(e["name"]): int(e["size"]) for e in entries if e["type"] == "file"}


def is_file(location: Location) -> bool:
    """Whether a location names a file (or an object), not a folder (or a key prefix)."""
    if not is_remote(location):
        return Path(location).is_file()
    fs, path = filesystem(location)
    return bool(fs.isfile(path))


def download(location: Location, local: Path) -> Path:
    """Copy a file or object to a local path (for readers that need a real file, such as torch.load)."""
    fs, path = filesystem(location)
    fs.get_file(path, str(local))
    return local
