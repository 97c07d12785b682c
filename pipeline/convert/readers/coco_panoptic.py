"""COCO panoptic: a JSON listing each image's segments (id, category_id) and one RGB PNG per image
whose pixel holds segment id = R + 256*G + 256^2*B. Each pixel gets its segment's category; id 0
(void) becomes ignore; a segment id in the PNG that segments_info lacks is a BadSample.

Split: images (folder), annotations (folder of PNGs), index (the JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.convert.readers.base import BadSample, FunctionReader, Sample, WorkItem
from pipeline.convert.readers.cocojson import (
    image_item,
    load_index,
    raise_planned_error,
    split_paths,
    unique_sorted,
)
from pipeline.convert.readers.common import (
    check_options,
    check_size,
    load_image,
    make_sample,
    open_label,
    raw_table,
)
from pipeline.taxonomy.schema import DatasetTaxonomy


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    check_options(tax, frozenset())  # these formats take no format_options
    root = Path(root)
    index, images_dir, png_dir = split_paths(tax, root, split)
    if png_dir is None:
        raise ValueError(f"{tax.name}: split {split!r} needs `annotations` (the PNG folder)")
    _, images, annotations = load_index(index)
    items = []
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not isinstance(ann.get("file_name"), str):
            raise BadSample(index, f"malformed JSON: annotations[{n}] has no 'file_name'")
        png = png_dir / ann["file_name"]
        extra: dict = {"index": str(index)}
        image_entry = images.get(ann.get("image_id"))
        segments = ann.get("segments_info")
        try:
            extra["segments"] = [(int(s["id"]), s["category_id"]) for s in segments]
        except (TypeError, KeyError, ValueError):
            extra["error"] = f"annotations[{n}] ({ann['file_name']}): malformed segments_info"
        if image_entry is None:
            extra["error"] = (
                f"annotations[{n}] ({ann['file_name']}): image_id {ann.get('image_id')!r} not in 'images'"
            )
            image = images_dir / (Path(ann["file_name"]).stem + ".jpg")
        else:
            image = images_dir / image_entry["file_name"]
        items.append(image_item(image.name, image, root, extra, annotation=png))
    return iter(unique_sorted(items, f"{tax.name}/{split}"))


def segment_ids(rgb: np.ndarray) -> np.ndarray:
    """Panoptic segment id per pixel; int32 first so 256^2*B doesn't overflow uint8."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    raise_planned_error(item)
    image = load_image(item.image)
    assert item.annotation is not None
    png = open_label(item.annotation, ("RGB",))
    check_size(item.annotation, png.size, image[2], image[3])

    table = raw_table(tax)
    category_of: dict[int, object] = {}
    for seg_id, category in item.extra.get("segments", []):
        if seg_id in category_of:
            raise BadSample(item.annotation, f"segment id {seg_id} listed twice in segments_info")
        category_of[seg_id] = category

    # Look every pixel up among the listed segments (a few dozen), rather than sorting all pixels.
    known = np.array(sorted(category_of.keys() | {0}), dtype=np.int64)
    ids = segment_ids(np.asarray(png))
    pos = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    listed = known[pos] == ids
    if not listed.all():
        missing = np.unique(ids[~listed]).tolist()
        raise BadSample(item.annotation, f"segment id(s) {missing[:10]} in the PNG but not in segments_info")
    targets = np.empty(len(known), dtype=np.int64)
    for n, seg_id in enumerate(known.tolist()):
        if seg_id == 0:
            targets[n] = tax.ignore_index
            continue
        category = category_of[seg_id]
        if category not in table:
            raise BadSample(
                item.annotation, f"category id {category!r} (segment {seg_id}) not in taxonomy {tax.name!r}"
            )
        targets[n] = table[category]
    label = targets.astype(tax.label_dtype)[pos]
    return make_sample(item, image, label)


READER = FunctionReader(plan=plan, read=read, options=frozenset())
