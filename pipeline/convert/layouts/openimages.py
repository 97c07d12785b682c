"""Layout writer of openimages_v6: images where the split's glob finds them, one binary PNG per object
mask under the annotations folder, and the segmentation CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.convert.layouts import Files, png
from pipeline.convert.layouts.paired import located
from pipeline.convert.readers.openimages_v6 import mask_name
from pipeline.taxonomy.schema import DatasetTaxonomy

COLUMNS = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
           "PredictedIoU", "Clicks"]  # the release's CSV, in its order


@dataclass(frozen=True)
class ObjectMask:
    label: str  # the class MID, e.g. /m/0k4j
    box_id: str
    mask: np.ndarray  # nonzero on the object, at any resolution (the release's are often smaller)
    box: tuple = ("0.1", "0.9", "0.1", "0.9")  # XMin, XMax, YMin, YMax as the CSV writes them
    mode: str = "L"  # "1" writes a 1-bit PNG, as some of the release's masks are


@dataclass(frozen=True)
class OpenImagesImage:
    id: str
    image: bytes
    masks: list[ObjectMask]


def write_openimages(tax: DatasetTaxonomy, root: Path, split: str, images: list[OpenImagesImage]) -> dict[str, Path]:
    """One CSV row per mask, in the given order; returns image id -> image file."""
    spec = tax.splits[split]
    files, placed, rows = Files(), {}, [COLUMNS]
    for im in images:
        placed[im.id] = files.put(located(root, spec.images, (), f"{im.id}.jpg"), im.image)
        for m in im.masks:
            name = mask_name(im.id, m.label, m.box_id)
            files.put(located(root, spec.annotations, (), name), png((m.mask > 0).astype(np.uint8) * 255, m.mode))
            rows.append([name, im.id, m.label, m.box_id, *m.box, "0.8", ""])
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    files.put(root / spec.index, text.getvalue().encode())
    return placed
