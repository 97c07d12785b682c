"""OpenImages V6 segmentation: a CSV (MaskPath, ImageID, LabelName, BoxID, ...) and one binary mask
PNG per object, named <ImageID>_<MID without slashes>_<BoxID>.png, at its own resolution.

plan() reads the CSV once, exactly (a damaged row stops the split naming its line), and groups rows
per image in compact columns. read() resizes each mask to the image size
(nearest), thresholds it, and composes one map: pixels no mask covers are ignore, and where masks
overlap the smaller one wins so small objects survive. Raw ids are MID strings ("/m/04yx4").

Split: images (a glob such as "train/*.jpg"; the image is <ImageID> with that extension),
annotations (the mask folder), index (the CSV)."""

from __future__ import annotations

import csv
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.common import (
    class_of,
    load_image,
    make_sample,
    open_index,
    open_label,
    paint,
    sanitize_key,
)
from pipeline.convert.readers.pairing import guess_image_path, split_spec
from pipeline.convert.readers.plan_columns import ItemColumns
from pipeline.errors import BadInput
from pipeline.taxonomy.lut import mapper_for
from pipeline.taxonomy.schema import DatasetTaxonomy

REQUIRED = ("MaskPath", "ImageID", "LabelName", "BoxID")


def mask_name(image_id: str, mid: str, box_id: str) -> str:
    return f"{image_id}_{mid.replace('/', '')}_{box_id}.png"


def _row_problem(row: dict) -> str | None:
    """What is wrong with a well-formed row's content (that image is quarantined), or None."""
    if not row["BoxID"] or not row["LabelName"].startswith("/"):
        return "empty BoxID or a LabelName that is not a MID"
    expected = mask_name(row["ImageID"], row["LabelName"], row["BoxID"])
    if row["MaskPath"] and Path(row["MaskPath"]).name != expected:
        return f"MaskPath {row['MaskPath']!r} does not match its row (expected {expected!r})"
    if sanitize_key(row["ImageID"]) != row["ImageID"]:
        return f"ImageID {row['ImageID']!r} is not a plain id (letters, digits, '-', '_')"
    return None


def decoded_lines(index: Path, f) -> Iterator[str]:
    """The CSV's lines as text; a byte sequence that is not UTF-8 stops the split naming its line,
    and so does a last line without its newline (a download cut mid-row)."""
    number = 0
    for number, raw in enumerate(f, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadSample(index, f"damaged CSV: line {number}: undecodable bytes (not UTF-8) at column "
                                   f"{e.start + 1}: {raw[max(0, e.start - 20): e.start + 4]!r}") from None
        if not line.endswith("\n"):
            raise BadSample(index, f"damaged CSV: line {number} ends without a newline: the file was cut "
                                   f"mid-row (a complete index ends with a newline)")
        yield line


def read_rows(index: Path) -> Iterator[tuple[int, dict]]:
    """(line, row) for every row of the segmentation CSV, read completely and exactly: any row that
    does not have the header's fields (an unbalanced quote, a cut row) stops the split, naming it."""
    try:
        f = open_index(index)  # past a byte-order mark; closed by the `with f` below
    except FileNotFoundError:
        raise BadSample(index, "missing file") from None
    with f:
        lines = decoded_lines(index, f)
        reader = csv.reader(lines, strict=True)
        line = 1  # where the row being read starts: an unbalanced quote is reported where it opened
        try:
            header = next(reader, None)
            missing = [c for c in REQUIRED if c not in (header or [])]
            if missing:
                raise BadSample(index, f"malformed CSV: header lacks {missing}")
            while True:
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                if len(row) != len(header) or any("\n" in v or "\r" in v for v in row):
                    raise BadSample(
                        index,
                        f"damaged CSV: line {line}: {len(row)} field(s) where the header has {len(header)}"
                        + (" and a quoted field spans lines" if any("\n" in v for v in row) else "")
                        + " (an unbalanced quote or a cut row?)",
                    )
                values = dict(zip(header, row))
                if not values["ImageID"]:
                    raise BadSample(index, f"damaged CSV: line {line}: empty ImageID")
                yield line, values
        except csv.Error as e:
            raise BadSample(index, f"damaged CSV: line {line}: {e} (read up to line {reader.line_num}; an "
                                   f"unbalanced quote?)") from None


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> ItemColumns:
    """One item per image of the CSV, in compact columns: each mask is a (MID code, BoxID) pair, its
    file name rebuilt from the row (2.7M rows in train)."""
    import numpy as np

    root = Path(root)
    spec = split_spec(tax, split)
    if not spec.index or not spec.annotations:
        raise BadInput(
            f"{tax.name}: split {split!r} needs `index` (the CSV) and `annotations` (mask folder)"
        )
    index, masks_dir = root / spec.index, root / spec.annotations
    row_of: dict[str, int] = {}
    keys: list[str] = []
    errors: dict[int, str] = {}
    mids: dict[str, int] = {}
    mask_row, mask_mid = array("q"), array("i")
    box_ids: list[str] = []
    for line, row in read_rows(index):
        image_id = row["ImageID"]
        at = row_of.get(image_id)
        if at is None:
            at = row_of[image_id] = len(keys)
            keys.append(sanitize_key(image_id))
        problem = _row_problem(row)
        if problem:
            errors.setdefault(at, f"CSV line {line}: {problem}")
            continue
        mask_row.append(at)
        mask_mid.append(mids.setdefault(sys.intern(row["LabelName"]), len(mids)))
        box_ids.append(row["BoxID"])
    rows = np.frombuffer(mask_row, dtype=np.int64) if len(mask_row) else np.zeros(0, np.int64)
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=len(keys)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    codes = (np.frombuffer(mask_mid, dtype=np.int32) if len(mask_mid) else np.zeros(0, np.int32))[order]
    boxes = np.array(box_ids, dtype=np.bytes_)[order] if box_ids else np.zeros(0, "S1")
    del box_ids, mask_row, mask_mid, rows
    return ItemColumns(
        keys=keys,
        images=[str(guess_image_path(root, spec.images, k)) for k in keys],
        root=str(root),
        shared={"index": str(index), "masks_dir": str(masks_dir), "mids": list(mids)},
        arrays={"mask_mid": (codes, starts, counts), "mask_box": (boxes, starts, counts)},
        errors=errors,
    )


def masks_of(item: WorkItem) -> list[tuple[Path, str]]:
    """(mask file, MID) for each mask of a planned image, in CSV order."""
    folder, mids = Path(item.extra["masks_dir"]), item.extra["mids"]
    return [
        (folder / mask_name(item.key, mids[code], box.decode()), mids[code])
        for code, box in zip(item.extra["mask_mid"], item.extra["mask_box"])
    ]


def load_mask(path: str, width: int, height: int) -> np.ndarray:
    im = open_label(path, ("1", "L", "P"))
    if im.mode != "L":
        im = im.convert("L")
    if im.size != (width, height):
        im = im.resize((width, height), Image.NEAREST)
    return np.asarray(im) > 127


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(item.image)
    width, height = image.width, image.height
    planned = masks_of(item)
    unknown = sorted({mid for _, mid in planned if mid not in mapper_for(tax).table})
    if unknown:  # all of them, not only the first: the end-of-convert table counts each
        raise BadSample(item.index or item.image, f"{item.key}: MID(s) {unknown} not in taxonomy {tax.name!r}",
                        unknown=unknown)
    masks = [(load_mask(str(path), width, height), class_of(tax, mid, item.index or item.image, f"{item.key}: MID"))
             for path, mid in planned]
    return make_sample(item, image, paint(masks, height, width, tax.ignore_index, tax.label_dtype))
