"""COCO panoptic: a JSON listing each image's segments (id, category_id) and one RGB PNG per image
whose pixel holds segment id = R + 256*G + 256^2*B. Each pixel gets its segment's category; id 0
(void) becomes ignore; a segment id in the PNG that segments_info lacks is a BadSample.

Split: images (folder), annotations (folder of PNGs), index (the JSON)."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.cocojson import image_item, load_index, split_paths, unique_sorted
from pipeline.convert.readers.common import (
    check_size,
    class_of,
    load_image,
    make_sample,
    open_label,
    sanitize_key,
)
from pipeline.errors import BadInput
from pipeline.names import inside, relative_problem
from pipeline.taxonomy.lut import gather, lookup, regroup_counts, value_counts
from pipeline.taxonomy.schema import DatasetTaxonomy


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    root = Path(root)
    index, images_dir, png_dir = split_paths(tax, root, split)
    if png_dir is None:
        raise BadInput(f"{tax.name}: split {split!r} needs `annotations` (the PNG folder)")
    _, images, annotations = load_index(index)
    items = []
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not isinstance(ann.get("file_name"), str):
            raise BadSample(index, f"malformed JSON: annotations[{n}] has no 'file_name'")
        what = f"annotations[{n}] ({ann['file_name']})"
        png = inside(png_dir, ann["file_name"])
        extra: dict = {}
        error = None
        image_entry = images.get(ann.get("image_id"))
        segments = ann.get("segments_info")
        try:
            extra["segments"] = [(int(s["id"]), s["category_id"]) for s in segments]
        except (TypeError, KeyError, ValueError):
            error = f"{what}: malformed segments_info"
        if isinstance(image_entry, list):  # one id, several images: which one the PNG labels is unknown
            error = _shared_id(ann.get("image_id"), image_entry)
            image_entry = image_entry[0]
        if image_entry is None:
            error = f"{what}: image_id {ann.get('image_id')!r} not in 'images'"
            image = images_dir / (Path(ann["file_name"]).stem + ".jpg")
        else:
            image = inside(images_dir, image_entry["file_name"])
            if image is None:
                error = f"{what}: its image's file_name {relative_problem(image_entry['file_name'])}: not read"
                image = images_dir / sanitize_key(Path(image_entry["file_name"]).stem or "bad-file-name")
        if png is None:
            error = f"{what}: file_name {relative_problem(ann['file_name'])}: not read"
            png = png_dir / sanitize_key(Path(ann["file_name"]).stem or "bad-file-name")
        items.append(image_item(image.name, image, root, index, extra, error, annotation=png))
    # An image the index lists with no annotation entry has no label: reported, not dropped.
    annotated = {ann.get("image_id") for ann in annotations if isinstance(ann, dict)}
    for image_id, entry in images.items():
        if isinstance(entry, list):  # an id listed twice: its later entries are quarantined here
            items += [_entry_item(e, images_dir, root, index, _shared_id(image_id, entry))
                      for e in (entry[1:] if image_id in annotated else entry)]
            continue
        if image_id in annotated:
            continue
        name = str(entry.get("file_name", image_id))
        missing = f"missing label file: image id {image_id!r} ({name}) has no entry in 'annotations'"
        items.append(_entry_item(entry, images_dir, root, index, missing))
    return iter(unique_sorted(items, f"{tax.name}/{split}"))


def _shared_id(image_id: object, entries: list[dict]) -> str:
    names = ", ".join(repr(e["file_name"]) for e in entries)
    return (f"image id {image_id!r} is listed {len(entries)} times in 'images' ({names}): which image its "
            f"annotation labels is ambiguous, so none is converted")


def _entry_item(entry: dict, images_dir: Path, root: Path, index: Path, error: str) -> WorkItem:
    """An item for an 'images' entry that read() reports as `error`; a file_name that would leave the
    images folder is never used as a path."""
    name = entry["file_name"]
    image = inside(images_dir, name)
    if image is None:
        error = f"{error}; file_name {relative_problem(name)}"
        image = images_dir / sanitize_key(Path(name).stem or "bad-file-name")
    return image_item(image.name, image, root, index, {}, error)


ID_BITS = 24  # a segment id is R + 256*G + 256^2*B


def rgbx_words(png: Image.Image) -> np.ndarray:
    """One little-endian uint32 per pixel (H x W): the segment id in the low 24 bits, a pad byte on
    top. PIL keeps RGB as four bytes per pixel, so this is one copy with no per-channel arithmetic."""
    return np.frombuffer(png.tobytes("raw", "RGBX"), dtype="<u4").reshape(png.size[1], png.size[0])


def segment_ids(png: Image.Image) -> np.ndarray:
    """Panoptic segment id per pixel (uint32, H x W), from an RGB image."""
    return rgbx_words(png) & np.uint32((1 << ID_BITS) - 1)


def segment_slots(png: Image.Image, known: list[int]) -> np.ndarray:
    """Per pixel: 1 + the position of its segment id in `known`, or 0 for an id not in `known`.

    A table over every possible id (2^24 entries) makes this one gather. It lives in an anonymous
    mmap, which the kernel hands out zeroed and backs with memory only where written (the pages of
    the few listed ids); np.zeros could instead memset all of it from the heap on every call."""
    dtype = np.dtype(np.uint8 if len(known) < 256 else np.uint16)
    table = np.frombuffer(mmap.mmap(-1, (1 << ID_BITS) * dtype.itemsize), dtype=dtype)
    listed = np.asarray(known, dtype=np.int64)
    fits = (listed >= 0) & (listed < 1 << ID_BITS)  # other ids cannot occur in an RGB PNG
    table[listed[fits]] = np.arange(1, len(known) + 1)[fits]
    return gather(table, rgbx_words(png), bits=ID_BITS)


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(item.image)
    assert item.annotation is not None
    png = open_label(item.annotation, ("RGB",))
    check_size(item.annotation, png.size, image.width, image.height)

    category_of: dict[int, object] = {}
    for seg_id, category in item.extra.get("segments", []):
        if seg_id in category_of:
            raise BadSample(item.annotation, f"segment id {seg_id} listed twice in segments_info")
        category_of[seg_id] = category

    known = sorted(category_of.keys() | {0})
    slots = segment_slots(png, known)
    counts = value_counts(slots, len(known) + 1)  # counts[0]: pixels whose id is not listed
    if counts[0]:
        missing = np.unique(segment_ids(png)[slots == 0]).tolist()
        raise BadSample(item.annotation, f"segment id(s) {missing[:10]} in the PNG but not in segments_info")
    targets = np.zeros(len(known) + 1, dtype=np.int64)  # by slot; slot 0 never occurs (checked above)
    for n, seg_id in enumerate(known, 1):
        if seg_id == 0:
            targets[n] = tax.ignore_index
            continue
        targets[n] = class_of(tax, category_of[seg_id], item.annotation, f"segment {seg_id}: category id")
    targets = targets.astype(tax.label_dtype)
    by_slot = np.zeros(256 if slots.dtype == np.uint8 else len(targets), dtype=targets.dtype)
    by_slot[: len(targets)] = targets
    label = lookup(by_slot, slots)
    return make_sample(item, image, label, label_counts=regroup_counts(counts, targets))

