"""Read a large COCO-style JSON index as a stream (ijson's C backend), never as one Python object.

The Objects365 v2 train index is about 4.8 GB; `json.load` turns it into ~25M dicts (tens of GiB).
Here each top-level list ('categories', 'images', 'annotations') is read in its own pass and only
what the planner keeps is stored, in compact columns. A damaged file is never half-read: any
parse error stops the split with the file, the line, the byte and the parser's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.convert.readers.base import BadSample
from pipeline.convert.readers.common import open_index

_CHUNK = 1 << 16


class _CountingReader:
    """A binary file that remembers where the last chunk handed to the parser started and ended."""

    def __init__(self, f):
        self._f = f
        self.start = 0  # byte offset of the last chunk read
        self.end = 0
        self.last = b""
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes with read(0) to tell bytes from text
            return self._f.read(0)
        data = self._f.read(size if size > 0 else _CHUNK)
        self.tail = self.last[-256:]  # the parser's context snippet may reach back into it
        self.start, self.end, self.last = self.end, self.end + len(data), data
        return data


def line_of(path: Path, offset: int) -> int:
    """1-based line of a byte offset, counting newlines up to it (only run when reporting an error)."""
    line, done = 1, 0
    with open(path, "rb") as f:
        while done < offset:
            chunk = f.read(min(1 << 20, offset - done))
            if not chunk:
                break
            line += chunk.count(b"\n")
            done += len(chunk)
    return line


def where(path: Path, offset: int) -> str:
    return f"line {line_of(path, offset)} (byte {offset})"


def _error_offset(reader: _CountingReader, message: str) -> int:
    """Best byte offset of a parse error: the first undecodable byte of the chunk in play, else the
    spot the parser's context snippet points at, else the end of that chunk."""
    try:
        reader.last.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(reader.last) - 3 or "UTF8" in message:  # not a character cut by the chunk end
            return reader.start + e.start
    lines = message.splitlines()
    if len(lines) >= 3 and "^" in lines[2]:
        snippet, caret = lines[1], lines[2].index("^")
        text = snippet.strip()
        if text:
            # yajl shows line breaks in its snippet as spaces: search a copy of the chunk alike.
            flat = (reader.tail + reader.last).translate(bytes.maketrans(b"\n\r\t", b"   "))
            found = flat.rfind(text.encode("utf-8", "replace"))
            if found >= 0:
                base = reader.start - len(reader.tail)
                return base + found + max(0, caret - (len(snippet) - len(snippet.lstrip())))
    return reader.end


def _parsed(path: Path, make) -> Iterator[Any]:
    """Run `make(reader)` (an ijson generator over the file); a parse error stops the split naming
    the file, line, byte and reason."""
    import ijson

    try:
        f = open_index(path)  # past a byte-order mark: closed by the `with f` below
    except FileNotFoundError:
        raise BadSample(path, "missing file") from None
    with f:
        reader = _CountingReader(f)
        reader.end = f.tell()  # offsets count from the file's start, a BOM included
        try:
            yield from make(reader)
        except ijson.JSONError as e:
            message = e.args[0].decode("utf-8", "replace") if isinstance(e.args[0], bytes) else str(e)
            offset = _error_offset(reader, message)
            reason = message.splitlines()[0].strip() if message.strip() else type(e).__name__
            if "premature EOF" in reason or "Incomplete" in reason:
                reason += " (the file ends early: a cut download?)"
            raise BadSample(path, f"malformed JSON at {where(path, offset)}: {reason}") from None


def stream(path: Path, prefix: str) -> Iterator[Any]:
    """The JSON values under `prefix` (ijson syntax, e.g. 'annotations.item'), floats as float.
    Reads the whole file: the C parser checks every byte of it."""
    import ijson

    return _parsed(path, lambda reader: ijson.items(reader, prefix, use_float=True))


_SCALARS = frozenset(("number", "string", "boolean", "null"))


def list_fields(path: Path, key: str, fields: frozenset[str]) -> Iterator[dict | None]:
    """The given scalar fields of each entry of the top-level list `key` (None for an entry that is
    not an object), stopping at the list's end instead of parsing the rest of the file.

    `stream()` cannot stop early: with 'images' first in a 4.8 GB index it would tokenise the 4.6 GB
    of annotations after the last image. Here events pass through Python, which is slower per byte,
    so a list that comes after 'annotations' falls back to `stream()`."""
    import ijson

    def events(reader):
        entry_prefix, field_prefix = f"{key}.item", f"{key}.item."
        current: dict | None = None
        for prefix, event, value in ijson.parse(reader, use_float=True):
            if prefix == entry_prefix:
                if event == "start_map":
                    current = {}
                elif event == "end_map":
                    yield current
                elif event != "map_key":
                    yield None  # a scalar or a list where an object belongs
            elif prefix.startswith(field_prefix):
                name = prefix[len(field_prefix):]
                if name in fields and current is not None:
                    current[name] = value if event in _SCALARS else _NOT_SCALAR
            elif prefix == key and event == "end_array":
                return
            elif prefix == "annotations" and event == "start_array":
                raise _Fallback

    try:
        yield from _parsed(path, events)
    except _Fallback:
        for entry in stream(path, f"{key}.item"):
            yield {k: v for k, v in entry.items() if k in fields} if isinstance(entry, dict) else None


class _Fallback(Exception):
    pass


_NOT_SCALAR = object()  # a wanted field whose value is an object or a list


def categories(path: Path) -> dict[Any, str]:
    """id -> name of the index's 'categories' list (empty when it has none).

    COCO exports put 'categories' after the annotations. When the file's last megabyte holds a
    top-level `"categories":` key, only that tail is parsed (as `{` + tail: it parses only if the key
    really is top-level, since a nested one leaves brackets unbalanced); otherwise the whole file."""
    cats = _tail_categories(path)
    entries = cats if isinstance(cats, list) else list(stream(path, "categories.item"))
    out: dict[Any, str] = {}
    for n, cat in enumerate(entries):
        if not isinstance(cat, dict) or "id" not in cat:
            raise BadSample(path, f"malformed JSON: categories[{n}] has no 'id'")
        out[cat["id"]] = str(cat.get("name", ""))
    return out


def _tail_categories(path: Path) -> list | None:
    import ijson

    try:
        with open_index(path) as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - (1 << 20)))
            tail = f.read()
    except OSError:
        return None  # stream() reports it
    at = tail.rfind(b'"categories"')
    if at < 0:
        return None
    try:
        # Parse to the very end: a nested "categories" key only shows as unbalanced brackets there.
        pairs = list(ijson.kvitems(b"{" + tail[at:], "", use_float=True))
        cats = next((v for k, v in pairs if k == "categories"), None)
    except ijson.JSONError:
        return None
    return cats if isinstance(cats, list) else None
