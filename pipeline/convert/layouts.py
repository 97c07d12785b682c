"""The formats' own files, written the way a release writes them: the other half of the readers.

The tests' fixtures, the demo corpus and the benchmarks' inputs each decide what their data shows;
the file encodings that several formats share are written here once, so a generator cannot drift
from what the reader expects.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pipeline.convert.readers.openimages_v6 import mask_name

__all__ = ["OPENIMAGES_COLUMNS", "mask_name", "panoptic_rgb", "write_coco_index", "write_openimages_index"]

# The columns of an OpenImages V6 segmentation CSV, in the release's order.
OPENIMAGES_COLUMNS = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
                      "PredictedIoU", "Clicks"]


def panoptic_rgb(segment_ids: np.ndarray) -> np.ndarray:
    """Segment id per pixel -> the H x W x 3 uint8 pixels of a COCO panoptic PNG (id = R + 256 G + 256^2 B)."""
    ids = np.asarray(segment_ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def write_coco_index(path: Path, images: list[dict], annotations: list[dict],
                     categories: list[dict] | None = None, **extra) -> Path:
    """A COCO-style JSON index (panoptic, instances, Objects365); `extra` keys such as info come first."""
    doc = {**extra, "images": images, "annotations": annotations}
    if categories is not None:
        doc["categories"] = categories
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_openimages_index(path: Path, rows: list[list]) -> Path:
    """An OpenImages segmentation CSV: the header, then one row per mask (OPENIMAGES_COLUMNS order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OPENIMAGES_COLUMNS)
        writer.writerows(rows)
    return path
