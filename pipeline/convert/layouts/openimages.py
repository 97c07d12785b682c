"""Layout writer of openimages_v6: images where the split's glob finds them, one binary PNG per object
mask under the annotations folder (named <image>_<label without '/'>_<box>.png), and the CSV index."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.convert.layouts import Files, Placed, png
from pipeline.convert.layouts.paired import located
from pipeline.convert.readers.openimages_v6 import mask_name
from pipeline.taxonomy.schema import DatasetTaxonomy

# The columns of an OpenImages V6 segmentation CSV, in the release's order.
COLUMNS = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax", "PredictedIoU",
           "Clicks"]


@dataclass(frozen=True)
class ObjectMask:
    label: str  # the class MID, e.g. /m/0k4j
    box_id: str
    mask: np.ndarray  # nonzero on the object, at any resolution (the release's are often smaller than the image)
    box: tuple = ("0.1", "0.9", "0.1", "0.9")  # XMin, XMax, YMin, YMax as the CSV writes them
    predicted_iou: str = "0.8"
    mode: str = "L"  # "1" writes a 1-bit PNG, as some release masks are


@dataclass(frozen=True)
class OpenImagesImage:
    id: str
    image: bytes
    masks: list[ObjectMask]


def write_openimages(tax: DatasetTaxonomy, root: Path, split: str, images: list[OpenImagesImage]) -> dict[str, Placed]:
    """Write images, masks and the CSV (one row per mask, in the given order); returns image id -> files."""
    spec = tax.splits[split]
    files, placed, rows = Files(), {}, []
    for im in images:
        placed[im.id] = Placed(files.put(located(root, spec.images, (), f"{im.id}.jpg"), im.image))
        for m in im.masks:
            name = mask_name(im.id, m.label, m.box_id)
            mask = (np.asarray(m.mask) > 0).astype(np.uint8) * 255
            files.put(located(root, spec.annotations, (), name), png(mask, m.mode))
            rows.append([name, im.id, m.label, m.box_id, *m.box, m.predicted_iou, ""])
    csv_text = io.StringIO(newline="")
    csv.writer(csv_text).writerows([COLUMNS, *rows])
    files.put(root / spec.index, csv_text.getvalue().encode())
    return placed
