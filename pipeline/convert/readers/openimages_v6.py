"""OpenImages V6 segmentation: a CSV (MaskPath, ImageID, LabelName, BoxID, ...) and one binary mask
PNG per object, named <ImageID>_<MID without slashes>_<BoxID>.png, at its own resolution.

plan() reads the CSV once and groups rows per image. read() resizes each mask to the image size
(nearest), thresholds it, and composes one map: pixels no mask covers are ignore, and where masks
overlap the smaller one wins so small objects survive. Raw ids are MID strings ("/m/04yx4").

Split: images (a glob such as "train/*.jpg"; the image is <ImageID> with that extension),
annotations (the mask folder), index (the CSV)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.cocojson import unique_sorted
from pipeline.convert.readers.common import (
    class_of,
    load_image,
    make_sample,
    open_label,
    paint,
    relative,
    sanitize_key,
)
from pipeline.convert.readers.pairing import guess_image_path, split_spec
from pipeline.errors import BadInput
from pipeline.taxonomy.schema import DatasetTaxonomy

REQUIRED = ("MaskPath", "ImageID", "LabelName", "BoxID")


def mask_name(image_id: str, mid: str, box_id: str) -> str:
    return f"{image_id}_{mid.replace('/', '')}_{box_id}.png"


def _row_problem(row: dict) -> str | None:
    if None in row or any(row.get(c) is None for c in REQUIRED):
        return "wrong number of fields"
    if not row["ImageID"] or not row["BoxID"] or not row["LabelName"].startswith("/"):
        return "empty ImageID/BoxID or a LabelName that is not a MID"
    expected = mask_name(row["ImageID"], row["LabelName"], row["BoxID"])
    if row["MaskPath"] and Path(row["MaskPath"]).name != expected:
        return f"MaskPath {row['MaskPath']!r} does not match its row (expected {expected!r})"
    return None


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    root = Path(root)
    spec = split_spec(tax, split)
    if not spec.index or not spec.annotations:
        raise BadInput(
            f"{tax.name}: split {split!r} needs `index` (the CSV) and `annotations` (mask folder)"
        )
    index, masks_dir = root / spec.index, root / spec.annotations
    rows: dict[str, list] = {}
    errors: dict[str, str] = {}
    try:
        with open(index, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise BadSample(index, f"malformed CSV: header lacks {missing}")
            for row in reader:
                image_id = sanitize_key(row.get("ImageID") or f"csv-line-{reader.line_num}")
                problem = _row_problem(row)
                if problem:
                    errors.setdefault(image_id, f"malformed CSV row at line {reader.line_num}: {problem}")
                    rows.setdefault(image_id, [])
                    continue
                # Names only (the folder is stored once per item): train has ~2.7M masks.
                name = row["MaskPath"] or mask_name(row["ImageID"], row["LabelName"], row["BoxID"])
                rows.setdefault(image_id, []).append((name, sys.intern(row["LabelName"])))
    except FileNotFoundError:
        raise BadSample(index, "missing file") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise BadSample(index, f"malformed CSV: {e}") from None

    items = []
    index_str, masks_str = str(index), str(masks_dir)
    for image_id, masks in rows.items():
        image = guess_image_path(root, spec.images, image_id)
        items.append(
            WorkItem(
                key=image_id,
                image=str(image),
                extra={"masks_dir": masks_str, "masks": masks},
                sources={"image": relative(image, root)},
                index=index_str,
                error=errors.get(image_id),
            )
        )
    return iter(unique_sorted(items, f"{tax.name}/{split}"))


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
    masks = []
    masks_dir = Path(item.extra["masks_dir"])
    for name, mid in item.extra.get("masks", []):
        target = class_of(tax, mid, item.index or item.image, f"{item.key}: MID")
        masks.append((load_mask(str(masks_dir / name), width, height), target))
    return make_sample(item, image, paint(masks, height, width, tax.ignore_index, tax.label_dtype))
