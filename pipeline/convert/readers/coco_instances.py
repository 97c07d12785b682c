"""Generic COCO instances JSON (RLE or polygon masks), so a new dataset in that format needs only a
YAML. Split: images (folder; `file_name` is relative to it) and index (the JSON).

Dense or coarse supervision: one label map per image; masks are painted largest first so a small
object lying on a larger one survives, and pixels no mask covers are ignore. Box supervision:
[x0, y0, x1, y1, class_index] boxes from `bbox`, clipped to the image."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.cocojson import boxes_for, plan_columns
from pipeline.convert.readers.common import class_of, load_image, make_sample, paint
from pipeline.convert.readers.plan_columns import ItemColumns
from pipeline.taxonomy.schema import DatasetTaxonomy


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> ItemColumns:
    return plan_columns(tax, root, split, masks=tax.supervision.value != "box")


def decode_mask(segmentation: object, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) -> HxW bool mask."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons: one or more [x0, y0, x1, y1, ...]
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        rle = segmentation
        if list(rle.get("size", [])) != [height, width]:
            raise ValueError(f"RLE size {rle.get('size')} differs from image {height}x{width}")
    else:
        raise TypeError(f"unknown segmentation {str(segmentation)[:80]!r}")
    with warnings.catch_warnings():  # pycocotools' decoder warns about numpy 2's copy keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode([rle])[:, :, 0].astype(bool)


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(item.image)
    width, height = image.width, image.height
    if tax.supervision.value == "box":
        notes: dict[str, int] = {}
        boxes = boxes_for(tax, item, width, height, notes)
        return make_sample(item, image, None, boxes=boxes, notes=notes)

    masks = instance_masks(tax, item, width, height, "image")
    return make_sample(item, image, paint(masks, height, width, tax.ignore_index, tax.label_dtype))


def instance_masks(tax: DatasetTaxonomy, item: WorkItem, width: int, height: int, what: str):
    """The item's instance masks decoded, each with its class index, after checking the index's image
    size against the real one (`what` names the image in the message: "image", "frame")."""
    index = item.index or item.image
    if (item.extra.get("width"), item.extra.get("height")) not in ((width, height), (None, None)):
        raise BadSample(
            item.image,
            f"{what} is {width}x{height} but the index says {item.extra['width']}x{item.extra['height']}",
        )
    masks = []
    for segmentation, category in item.extra.get("masks", []):
        target = class_of(tax, category, index, f"{item.key}: category id")
        try:
            masks.append((decode_mask(segmentation, height, width), target))
        except (TypeError, ValueError, KeyError) as e:
            raise BadSample(index, f"{item.key}: malformed segmentation: {e}") from None
    return masks

