"""Helpers every reader shares: open an image or a label file safely, map raw ids (through the
taxonomy's one mapper, pipeline/taxonomy/lut.py) naming the file, build a Sample.

Every failure becomes BadSample(path, reason) so one bad file goes to quarantine instead of stopping
the job, and nothing is ever silently relabelled.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.image_check import jpeg_problem, png_problem
from pipeline.shard_format import sanitize_key  # noqa: F401 (the key rule's owner; readers import it from here)
from pipeline.taxonomy.lut import UnknownRawValues, mapper_for
from pipeline.taxonomy.schema import DatasetTaxonomy

_EXT = {"JPEG": "jpg", "PNG": "png"}


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadSample(path, "missing file") from None
    except OSError as e:
        raise BadSample(path, f"cannot read file: {e}") from None


UTF8_BOM = b"\xef\xbb\xbf"


def open_index(path: str | Path):
    """An index file (JSON, CSV, id list) opened for binary reading, past a UTF-8 byte-order mark if it
    starts with one (Windows editors write it; it is not part of the content). Every index reader opens
    its file here, so a BOM means the same everywhere. FileNotFoundError as open() raises it."""
    f = open(path, "rb")  # noqa: SIM115 -- the caller closes it
    if f.read(len(UTF8_BOM)) != UTF8_BOM:
        f.seek(0)
    return f


class LoadedImage(NamedTuple):
    data: bytes  # the file's original bytes
    ext: str  # "jpg" or "png", from the bytes
    width: int
    height: int


def load_image(path: str | Path) -> LoadedImage:
    """The image's original bytes, its real extension and size.

    The header gives format and size. An end marker does not prove the content intact (a JPEG cut
    short with FFD9 appended, flipped bytes inside): every PNG gets its chunks CRC-checked and every
    JPEG a full decode that counts libjpeg's corrupt-data warnings as errors (image_check.py says
    what each catches)."""
    data = read_bytes(path)
    try:
        im = Image.open(io.BytesIO(data))
        fmt, (width, height) = im.format, im.size
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for corrupt data
        raise BadSample(path, f"corrupt or truncated image: {e}") from None
    if fmt not in _EXT:
        raise BadSample(path, f"unsupported image format {fmt!r} (need JPEG or PNG)")
    problem = png_problem(data) if fmt == "PNG" else jpeg_problem(data)
    if problem:
        raise BadSample(path, f"corrupt or truncated image: {problem}")
    return LoadedImage(data, _EXT[fmt], width, height)


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


def check_size(path: str | Path, label_size: tuple[int, int], width: int, height: int) -> None:
    if tuple(label_size) != (width, height):
        raise BadSample(
            path, f"label size {label_size[0]}x{label_size[1]} differs from image size {width}x{height}"
        )


def class_of(tax: DatasetTaxonomy, raw_id: object, path: str | Path, what: str) -> int:
    """One raw id (a category id, an OpenImages MID) -> class or ignore index; unknown -> BadSample."""
    try:
        return mapper_for(tax).target(raw_id)
    except UnknownRawValues:
        raise BadSample(path, f"{what} {raw_id!r} not in taxonomy {tax.name!r}", unknown=[raw_id]) from None


def map_raw(tax: DatasetTaxonomy, raw: np.ndarray, path: str | Path) -> np.ndarray:
    """Raw integer label array -> class indices (tax.label_dtype); unknown values -> BadSample."""
    try:
        return mapper_for(tax).map_array(raw)
    except UnknownRawValues as e:
        raise BadSample(path, f"{e.what} not in taxonomy {tax.name!r}: {e.values[:10]}", unknown=e.values,
                        unknown_pixels=e.pixels, pixels=e.total) from None


def map_label_image(
    tax: DatasetTaxonomy, im: Image.Image, path: str | Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """map_raw for a decoded label image, with the mapped value counts when they come for free."""
    try:
        return mapper_for(tax).map_label_image(im)
    except UnknownRawValues as e:
        raise BadSample(path, f"{e.what} not in taxonomy {tax.name!r}: {e.values[:10]}", unknown=e.values,
                        unknown_pixels=e.pixels, pixels=e.total) from None


def make_sample(
    item: WorkItem,
    image: LoadedImage,
    label: np.ndarray | None,
    boxes=None,
    label_counts: np.ndarray | None = None,
    notes: dict[str, int] | None = None,
) -> Sample:
    sources = dict(item.sources)
    if not sources:
        sources = {"image": Path(item.image).name}
        if item.annotation:
            sources["annotation"] = Path(item.annotation).name
    if label is not None:
        label = np.ascontiguousarray(label)
    return Sample(
        key=item.key,
        image_bytes=image.data,
        image_ext=image.ext,
        width=image.width,
        height=image.height,
        label=label,
        boxes=boxes,
        sources=sources,
        label_counts=label_counts,
        notes=dict(notes or {}),
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


def shared_key_groups(keys: list[str]) -> dict[str, list[int]]:
    """Key -> the positions that share it, for keys made more than once (two files that sanitise
    to one key, two index entries with one file_name)."""
    positions: dict[str, list[int]] = {}
    for n, key in enumerate(keys):
        positions.setdefault(key, []).append(n)
    return {key: at for key, at in positions.items() if len(at) > 1}


def ambiguous_key(key: str, n: int, taken: set[str]) -> str:
    """A distinct key for the n-th file of a shared key: its quarantine entry needs a key of its own."""
    candidate = f"{key}-ambiguous{n}"
    while candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def ambiguity(key: str, names: list[str]) -> str:
    return (f"key {key!r} is made by each of {', '.join(repr(n) for n in names)}: which one it names is "
            f"ambiguous, so none is converted (rename one)")


def quarantine_shared_keys(items: list[WorkItem]) -> list[WorkItem]:
    """Items whose keys are made more than once become planned errors naming every file that makes
    the key (each under a key of its own); the rest stay as they are. Sorted by key."""
    from dataclasses import replace

    groups = shared_key_groups([it.key for it in items])
    if not groups:
        return sorted(items, key=lambda it: it.key)
    taken = {it.key for it in items}
    out = [it for it in items if it.key not in groups]
    for key, at in groups.items():
        names = [" + ".join(dict.fromkeys(v for v in items[n].sources.values())) or items[n].image for n in at]
        message = ambiguity(key, names)
        for n, pos in enumerate(at, 1):
            item = items[pos]
            out.append(replace(item, key=ambiguous_key(key, n, taken), error=item.error or message))
    return sorted(out, key=lambda it: it.key)
