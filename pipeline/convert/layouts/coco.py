"""Layout writer of the COCO-style formats (coco_panoptic, coco_instances, objects365): images under the
split's images folder, panoptic PNGs under its annotations folder, one JSON index."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.convert.layouts import Files, png
from pipeline.taxonomy.schema import DatasetTaxonomy


@dataclass(frozen=True)
class CocoImage:
    """One image of the index, with its annotation entries (instances, Objects365: with image_id) or,
    for coco_panoptic, its segments_info, whose ids `segments` holds per pixel."""

    id: int
    file_name: str  # as the index names it; Objects365 v2 writes "images/v1/patchN/<name>"
    width: int
    height: int
    image: bytes | None  # None: listed in the index without a file
    annotations: list[dict] = field(default_factory=list)
    segments: np.ndarray | None = None


def panoptic_rgb(segment_ids: np.ndarray) -> np.ndarray:
    """Segment id per pixel -> the H x W x 3 pixels of a COCO panoptic PNG (id = R + 256 G + 256^2 B)."""
    ids = np.asarray(segment_ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def write_coco(tax: DatasetTaxonomy, root: Path, split: str, images: list[CocoImage],
               categories: list[dict] | None = None, **extra) -> dict[str, Path | None]:
    """Returns file_name stem -> image file. The index's categories default to the taxonomy's classes;
    `extra` top-level keys (info, licenses) come first."""
    spec = tax.splits[split]
    assert spec.index, f"{tax.name}/{split}: {tax.format} needs index"
    files, placed, entries, annotations = Files(), {}, [], []
    for im in images:
        stem, parts = Path(im.file_name).stem, Path(im.file_name).parts
        # Objects365 v2 names "images/v1/patchN/x.jpg" but its archives unpack to <images>/patchN/x.jpg.
        where = parts[-2:] if tax.format == "objects365" else parts
        placed[stem] = im.image and files.put(root.joinpath(spec.images, *where), im.image)
        entries.append({"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height})
        if tax.format != "coco_panoptic":
            annotations.extend(im.annotations)
            continue
        assert spec.annotations, f"{tax.name}/{split}: coco_panoptic needs annotations"
        files.put(root / spec.annotations / f"{stem}.png", im.segments, lambda s: png(panoptic_rgb(s)))
        annotations.append({"image_id": im.id, "file_name": f"{stem}.png", "segments_info": im.annotations})
    categories = [{"id": c.raw_id, "name": c.name} for c in tax.classes] if categories is None else categories
    doc = {**extra, "images": entries, "annotations": annotations, "categories": categories}
    files.put(root / spec.index, json.dumps(doc).encode())
    return placed
