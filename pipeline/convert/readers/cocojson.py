"""COCO-style JSON indexes (COCO panoptic, COCO instances, Objects365): load once in plan(), check
each entry, and turn boxes into clipped integer [x0, y0, x1, y1, class_index]."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.convert.readers.base import BadSample, WorkItem
from pipeline.convert.readers.common import class_of, relative, sanitize_key
from pipeline.convert.readers.pairing import split_spec
from pipeline.errors import BadInput
from pipeline.taxonomy.schema import DatasetTaxonomy


def load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadSample(path, "missing file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadSample(path, f"malformed JSON: {e}") from None


def split_paths(tax: DatasetTaxonomy, root: Path, split: str) -> tuple[Path, Path, Path | None]:
    """(index JSON, images folder, annotations folder or None) of a COCO-style split."""
    spec = split_spec(tax, split)
    if not spec.index:
        raise BadInput(f"{tax.name}: split {split!r} needs `index` (the JSON file)")
    annotations = root / spec.annotations if spec.annotations else None
    return root / spec.index, root / spec.images, annotations


def load_index(index: Path) -> tuple[dict, dict[Any, dict], list]:
    """The JSON, its images by id, and its annotation list; a wrong top-level shape is malformed."""
    data = load_json(index)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise BadSample(index, "malformed JSON: expected an object with an 'images' list")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise BadSample(index, "malformed JSON: 'annotations' is not a list")
    images: dict[Any, dict] = {}
    for n, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise BadSample(index, f"malformed JSON: images[{n}] lacks 'id' or 'file_name'")
        images[im["id"]] = im
    return data, images, annotations


def group_by_image(index: Path, annotations: list) -> tuple[dict[Any, list[dict]], dict[Any, str]]:
    """Annotations per image id, and per image id the first problem found in its entries."""
    by_image: dict[Any, list[dict]] = {}
    errors: dict[Any, str] = {}
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise BadSample(index, f"malformed JSON: annotations[{n}] has no 'image_id'")
        by_image.setdefault(ann["image_id"], []).append(ann)
        if "category_id" not in ann:
            errors.setdefault(ann["image_id"], f"annotations[{n}] has no 'category_id'")
    return by_image, errors


def image_item(
    key_source: str,
    image: Path,
    root: Path,
    index: Path,
    extra: dict,
    error: str | None = None,
    annotation: Path | None = None,
) -> WorkItem:
    sources = {"image": relative(image, root)}
    if annotation is not None:
        sources["annotation"] = relative(annotation, root)
    return WorkItem(
        key=sanitize_key(Path(key_source).stem),
        image=str(image),
        annotation=str(annotation) if annotation is not None else None,
        extra=extra,
        sources=sources,
        index=str(index),
        error=error,
    )


def unique_sorted(items: list[WorkItem], where: str) -> list[WorkItem]:
    seen: dict[str, WorkItem] = {}
    for item in items:
        if item.key in seen:
            raise BadInput(f"{where}: key {item.key!r} from both {seen[item.key].image} and {item.image}")
        seen[item.key] = item
    return [seen[k] for k in sorted(seen)]


def plan_per_image(
    tax: DatasetTaxonomy, root: Path, split: str, extra_for: Callable[[dict, list[dict]], dict]
) -> Iterator[WorkItem]:
    """One WorkItem per annotated image of a COCO instances-style index (read once, here).

    extra_for(image entry, its annotations) gives the small per-image data a reader needs; an image id
    the index lacks, or a bad annotation, is kept as a planned error that read() raises (quarantine)."""
    root = Path(root)
    index, images_dir, _ = split_paths(tax, root, split)
    _, images, annotations = load_index(index)
    by_image, errors = group_by_image(index, annotations)
    items = []
    for image_id, anns in by_image.items():
        entry = images.get(image_id)
        if entry is None:
            error = f"annotations name image id {image_id!r} that is not in 'images'"
            items.append(image_item(f"missing-image-{image_id}", images_dir / str(image_id), root, index, {}, error))
            continue
        error = f"image id {image_id!r}: {errors[image_id]}" if image_id in errors else None
        items.append(
            image_item(entry["file_name"], images_dir / entry["file_name"], root, index, extra_for(entry, anns), error)
        )
    return iter(unique_sorted(items, f"{tax.name}/{split}"))


def clip_box(bbox: Any, width: int, height: int) -> tuple[int, int, int, int] | None:
    """COCO [x, y, w, h] (floats) -> integer [x0, y0, x1, y1] covering it, clipped to the image;
    None when nothing is left. A bbox that is not four finite numbers raises ValueError."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"bbox {bbox!r} is not [x, y, w, h]")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"bbox {bbox!r} is not finite")
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def boxes_for(tax: DatasetTaxonomy, item: WorkItem, anns: list, width: int, height: int) -> list[list[int]]:
    """[x0, y0, x1, y1, class_index] per kept box: degenerate boxes and ignored classes are dropped;
    an unknown category or a malformed bbox is a BadSample naming the index file."""
    index = item.index or item.image
    boxes = []
    for bbox, category in anns:
        target = class_of(tax, category, index, f"{item.key}: category id")
        try:
            box = clip_box(bbox, width, height)
        except (TypeError, ValueError) as e:
            raise BadSample(index, f"{item.key}: malformed box: {e}") from None
        if box is None or target == tax.ignore_index:
            continue
        boxes.append([*box, target])
    return boxes
