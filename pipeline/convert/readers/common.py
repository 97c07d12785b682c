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


# What a complete file ends with: JPEG's end-of-image marker, PNG's IEND chunk (length 0, CRC fixed).
_END = {"JPEG": b"\xff\xd9", "PNG": b"\x00\x00\x00\x00IEND\xaeB`\x82"}


class LoadedImage(NamedTuple):
    data: bytes  # the file's original bytes
    ext: str  # "jpg" or "png", from the bytes
    width: int
    height: int


def load_image(path: str | Path) -> LoadedImage:
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
