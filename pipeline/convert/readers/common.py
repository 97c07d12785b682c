"""Helpers every reader shares: open an image or a label file safely, map raw values, build a Sample.

Every failure becomes BadSample(path, reason) so one bad file goes to quarantine instead of stopping
the job, and nothing is ever silently relabelled.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.shard_format import sanitize_key  # noqa: F401 (the key rule's owner; readers import it from here)
from pipeline.taxonomy.lut import UnknownRawValues, apply_lut, gather, integer_lut, unknown_values
from pipeline.taxonomy.schema import DatasetTaxonomy

_EXT = {"JPEG": "jpg", "PNG": "png"}


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadSample(path, "missing file") from None
    except OSError as e:
        raise BadSample(path, f"cannot read file: {e}") from None


# What a complete file ends with: JPEG's end-of-image marker, PNG's IEND chunk (length 0, CRC fixed).
_END = {"JPEG": b"\xff\xd9", "PNG": b"\x00\x00\x00\x00IEND\xaeB`\x82"}


def load_image(path: str | Path) -> tuple[bytes, str, int, int]:
    """The image's original bytes, its real extension and size.

    The header gives format and size; a file that ends with its format's end marker is complete, so
    it is not decoded (a decode costs as much as the rest of the conversion). Anything else (a
    truncated file, or trailing bytes after the marker) gets the full check: PNG chunks are
    CRC-checked by verify(), JPEG is decoded at 1/8 scale, which still reads every byte."""
    data = read_bytes(path)
    try:
        im = Image.open(io.BytesIO(data))
        fmt, (width, height) = im.format, im.size
        if fmt not in _EXT:
            raise BadSample(path, f"unsupported image format {fmt!r} (need JPEG or PNG)")
        if not data.endswith(_END[fmt]):
            if fmt == "PNG":
                im.verify()
            else:
                im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                im.load()
    except BadSample:
        raise
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for corrupt data
        raise BadSample(path, f"corrupt or truncated image: {e}") from None
    return data, _EXT[fmt], width, height


def open_label(path: str | Path, modes: tuple[str, ...] | None = None) -> Image.Image:
    """Open and fully decode a label image (so truncation shows here), optionally checking its mode."""
    data = read_bytes(path)
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # noqa: BLE001 -- as above
        raise BadSample(path, f"corrupt or truncated label image: {e}") from None
    if modes is not None and im.mode not in modes:
        raise BadSample(path, f"label image mode is {im.mode!r}, expected one of {list(modes)}")
    return im


def raise_planned_error(item: WorkItem) -> None:
    """plan() records a bad index entry on its item; read() reports it so only that sample is lost."""
    if item.extra.get("error"):
        raise BadSample(item.extra.get("index", item.image), item.extra["error"])


def check_options(tax: DatasetTaxonomy, known: frozenset[str]) -> None:
    """A format option the reader does not use would be silently ignored: refuse it instead."""
    unknown = sorted(set(tax.format_options) - known)
    if unknown:
        raise ValueError(
            f"{tax.name}: format_options {unknown} mean nothing to the {tax.format!r} reader "
            f"(it reads: {', '.join(sorted(known)) or 'none'})"
        )


def check_size(path: str | Path, label_size: tuple[int, int], width: int, height: int) -> None:
    if tuple(label_size) != (width, height):
        raise BadSample(
            path, f"label size {label_size[0]}x{label_size[1]} differs from image size {width}x{height}"
        )


# Tables are built once per taxonomy object (walking every class per image would be wasteful).
_CACHE: dict[tuple[int, str, int], tuple[DatasetTaxonomy, object]] = {}


def cached(tax: DatasetTaxonomy, kind: str, size: int, build):
    hit = _CACHE.get((id(tax), kind, size))
    if hit is not None and hit[0] is tax:
        return hit[1]
    if len(_CACHE) > 64:
        _CACHE.clear()
    value = build()
    _CACHE[(id(tax), kind, size)] = (tax, value)
    return value


def raw_table(tax: DatasetTaxonomy) -> dict:
    """tax.raw_to_target(), cached: raw id (int or str) -> class index or ignore index."""
    return cached(tax, "table", 0, tax.raw_to_target)


def lut_for(tax: DatasetTaxonomy, size: int) -> np.ndarray:
    return cached(tax, "lut", size, lambda: integer_lut(tax, size))


def _lut_size(tax: DatasetTaxonomy, raw: np.ndarray, path: str | Path) -> int:
    if raw.dtype == np.uint8:
        size = 256
    elif raw.dtype == np.uint16:
        size = 65536
    else:
        if raw.size and int(raw.min()) < 0:
            raise BadSample(path, f"negative raw label value(s): {sorted(set(raw[raw < 0].tolist()))[:10]}")
        size = 1 << max(8, int(raw.max(initial=0)).bit_length())
    largest = cached(
        tax, "largest_raw", 0, lambda: max((r for r in raw_table(tax) if isinstance(r, int)), default=0)
    )
    return max(size, largest + 1)


def map_raw(tax: DatasetTaxonomy, raw: np.ndarray, path: str | Path) -> np.ndarray:
    """Raw integer label array -> class indices (tax.label_dtype); unknown values -> BadSample."""
    try:
        return apply_lut(raw, lut_for(tax, _lut_size(tax, raw, path)), tax.label_dtype)
    except UnknownRawValues as e:
        raise BadSample(path, f"raw label value(s) not in taxonomy {tax.name!r}: {e.values[:10]}") from None


def map_label_image(
    tax: DatasetTaxonomy, im: Image.Image, path: str | Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """map_raw for a decoded label image, plus the mapped label's value counts when they come for
    free. 8-bit L and P (palette index = raw id) images are mapped in PIL: one histogram of the raw
    values (finds unknown ones, and gives the class counts) and one table lookup."""
    if im.mode not in ("L", "P"):
        raw = np.asarray(im)
        return map_raw(tax, raw if raw.dtype in (np.uint8, np.uint16) else raw.astype(np.int64), path), None
    if im.mode == "P":  # the same bytes read as L: PIL's histogram and point then see the indices
        im = Image.frombuffer("L", im.size, im.tobytes(), "raw", "L", 0, 1)
    lut, table, table_list = cached(tax, "lut8", 256, lambda: _table8(tax, path))
    raw_counts = np.asarray(im.histogram(), dtype=np.int64)
    bad = unknown_values(raw_counts, lut)
    if bad:
        raise BadSample(path, f"raw label value(s) not in taxonomy {tax.name!r}: {bad[:10]}")
    label = np.asarray(im.point(table_list)) if table.dtype == np.uint8 else gather(table, np.asarray(im))
    return label, regroup_counts(raw_counts, table)


def _table8(tax: DatasetTaxonomy, path: str | Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """For 8-bit label images: the raw-id table's first 256 entries (with UNKNOWN), the same in the
    label dtype (UNKNOWN wraps, but only values checked to be known are looked up), and as a list."""
    lut = lut_for(tax, _lut_size(tax, np.empty(0, np.uint8), path))[:256]
    table = lut.astype(tax.label_dtype)
    return lut, table, table.tolist()


def regroup_counts(counts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Counts of values v -> counts of table[v] (what a histogram of the mapped array would give)."""
    size = 256 if table.dtype == np.uint8 else int(table.max(initial=0)) + 1
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, table[: counts.size], counts[: table.size])
    return out


def target_of(table: dict, tax: DatasetTaxonomy, raw_id: object, path: str | Path) -> int:
    """One raw id (integer, or a string such as an OpenImages MID) -> class index or ignore index."""
    if raw_id not in table:
        raise BadSample(path, f"raw id {raw_id!r} not in taxonomy {tax.name!r}")
    return table[raw_id]


def make_sample(
    item: WorkItem,
    image: tuple[bytes, str, int, int],
    label: np.ndarray | None,
    boxes=None,
    label_counts: np.ndarray | None = None,
) -> Sample:
    data, ext, width, height = image
    sources = dict(item.extra.get("sources") or {})
    if not sources:
        sources = {"image": Path(item.image).name}
        if item.annotation:
            sources["annotation"] = Path(item.annotation).name
    if label is not None:
        label = np.ascontiguousarray(label)
    return Sample(
        key=item.key,
        image_bytes=data,
        image_ext=ext,
        width=width,
        height=height,
        label=label,
        boxes=boxes,
        sources=sources,
        label_counts=label_counts,
    )


def relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def paint(
    masks: list[tuple[np.ndarray, int]], height: int, width: int, ignore: int, dtype: str
) -> np.ndarray:
    """Compose class masks into one map: larger masks first, so smaller ones end on top."""
    label = np.full((height, width), ignore, dtype=dtype)
    order = sorted(range(len(masks)), key=lambda n: (-int(masks[n][0].sum()), n))
    for n in order:
        mask, target = masks[n]
        label[mask] = target
    return label
