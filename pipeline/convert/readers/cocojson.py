"""COCO-style JSON indexes (COCO panoptic, COCO instances, Objects365): load once in plan(), check
each entry, and turn boxes into clipped integer [x0, y0, x1, y1, class_index]."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.convert.readers import jsonindex
from pipeline.convert.readers.base import BadSample, WorkItem
from pipeline.convert.readers.common import (
    ambiguity,
    ambiguous_key,
    class_of,
    open_index,
    quarantine_shared_keys,
    relative,
    sanitize_key,
    shared_key_groups,
)
from pipeline.convert.readers.pairing import split_spec
from pipeline.convert.readers.plan_columns import ItemColumns, relative_to
from pipeline.errors import BadInput
from pipeline.names import inside, relative_problem
from pipeline.taxonomy.schema import DatasetTaxonomy


def load_json(path: Path) -> Any:
    try:
        with open_index(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadSample(path, "missing file") from None
    except json.JSONDecodeError as e:  # its message names the line and column
        raise BadSample(path, f"malformed JSON: {e}") from None
    except UnicodeDecodeError as e:  # e.start is a byte offset into the file
        raise BadSample(path, f"malformed JSON: undecodable bytes at {jsonindex.where(path, e.start)}: {e.reason}") from None


def split_paths(tax: DatasetTaxonomy, root: Path, split: str) -> tuple[Path, Path, Path | None]:
    """(index JSON, images folder, annotations folder or None) of a COCO-style split."""
    spec = split_spec(tax, split)
    if not spec.index:
        raise BadInput(f"{tax.name}: split {split!r} needs `index` (the JSON file)")
    annotations = root / spec.annotations if spec.annotations else None
    return root / spec.index, root / spec.images, annotations


def load_index(index: Path) -> tuple[dict, dict[Any, dict], list]:
    """The JSON, its images by id, and its annotation list; a wrong top-level shape is malformed.
    An id listed twice maps to a list of its entries (the caller quarantines them)."""
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
        if im["id"] in images:
            listed = images[im["id"]]
            images[im["id"]] = [*listed, im] if isinstance(listed, list) else [listed, im]
            continue
        images[im["id"]] = im
    return data, images, annotations


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
    """The items by key; entries that make one key (two with one file_name) are quarantined, naming
    each other, and the rest convert."""
    return quarantine_shared_keys(items)


IMAGE_FIELDS = frozenset(("id", "file_name", "width", "height"))
CROWD_NOTE = "crowd or ignore boxes (kept out of boxes)"
DEGENERATE_NOTE = "boxes of zero or negative size (dropped)"
EMPTY_NOTE = "images without annotations (not converted)"
ORPHAN_NOTE = "annotations naming an image id not in 'images' (quarantined)"
NO_IMAGE_NOTE = "annotations without an image id (quarantined)"
# Counted as each image is read (the file's real size is known only then), summed over the split.
OUTSIDE_NOTE = "boxes wholly outside the image (dropped)"
CLIPPED_NOTE = "boxes partly outside the image (clipped to it)"
IGNORED_CLASS_NOTE = "boxes of an ignored class (dropped)"
SCALED_NOTE = "images whose file is the index's size uniformly resized (boxes scaled to the file)"


def check_categories(tax: DatasetTaxonomy, index: Path, listed: dict[Any, str]) -> None:
    """The index's category list must be the taxonomy's: the same id names the same class. Another
    release's ids (Objects365 v1 vs v2) would silently relabel every box, so a mismatch stops here."""
    names: dict[Any, str] = {}
    for c in tax.classes:
        for raw in c.all_raw_ids:
            names[raw] = c.name
    ignored = set(tax.ignore_values)

    def norm(text: str) -> str:
        return " ".join(str(text).split()).lower()

    for cat_id, name in listed.items():
        if cat_id in ignored:
            continue
        if cat_id not in names:
            raise BadSample(index, f"category id {cat_id!r} ({name!r} in the index) is not in taxonomy "
                                   f"{tax.name!r}: the index is another version of the dataset?")
        if norm(names[cat_id]) != norm(name):
            raise BadSample(index, f"category id {cat_id!r} is {name!r} in the index but {names[cat_id]!r} in "
                                   f"taxonomy {tax.name!r}: the index is another version of the dataset?")


def plan_columns(tax: DatasetTaxonomy, root: Path, split: str, masks: bool = False) -> ItemColumns:
    """One item per annotated image of a COCO instances-style index, read as a stream into columns.

    Per box: [x, y, w, h] (float64, exact), category id (int32) and a crowd flag (iscrowd or ignore)
    as slices of three arrays, and the listed width/height. Duplicate image ids, entries sharing a
    file_name, a file_name that leaves the images folder, entries without a usable id, annotations of
    unlisted images or without an image id become planned errors (quarantine, naming the entry); crowd
    boxes, boxes of zero or negative size and images without annotations are counted in `notes`. With
    `masks`, each item also gets its (segmentation, category) pairs (dense COCO instances)."""
    from array import array

    import numpy as np

    root = Path(root)
    index, images_dir, _ = split_paths(tax, root, split)
    check_categories(tax, index, jsonindex.categories(index))

    id_row: dict[Any, int] = {}
    first_at: dict[Any, int] = {}
    keys: list[str] = []
    images: list[str] = []
    widths: list = []  # as listed, per image (two flat lists: 1.7M tuples would cost 100 MB more)
    heights: list = []
    errors: dict[int, str] = {}
    folder = str(images_dir)
    for n, im in enumerate(jsonindex.list_fields(index, "images", IMAGE_FIELDS)):
        row = len(keys)
        key, image, problem = image_entry(n, im, folder)
        keys.append(key)
        images.append(image)
        widths.append(im.get("width") if problem is None else None)
        heights.append(im.get("height") if problem is None else None)
        if problem is not None:  # that entry alone is quarantined (with its boxes); the split goes on
            errors[row] = problem
            if im is None or type(im.get("id")) not in (int, str):
                continue
        image_id = im["id"]
        if image_id in id_row:
            first = id_row[image_id]
            message = (f"image id {image_id!r} is listed twice in 'images' (images[{first_at[image_id]}] and "
                       f"images[{n}]): its annotations cannot be told apart")
            errors[first] = errors[row] = message
            continue
        id_row[image_id], first_at[image_id] = row, n
    if not keys:
        raise BadSample(index, "malformed JSON: no entries in an 'images' list")
    _quarantine_shared_keys(keys, images, errors, folder)

    rows, cats, crowd = array("q"), array("i"), array("B")
    boxes = array("d")
    segmentations: list = []
    unknown: dict[int, list] = {}
    orphans: dict[Any, int] = {}
    notes = dict.fromkeys((CROWD_NOTE, DEGENERATE_NOTE), 0)
    # The hot loop (25M boxes for Objects365): locals bound once, strings built only on errors.
    add_row, add_cat, add_crowd, add_box = rows.append, cats.append, crowd.append, boxes.extend
    lookup, degenerate, crowded = id_row.get, 0, 0

    def what(n: int, ann: dict) -> str:
        return f"annotations[{n}] (id {ann.get('id')!r})"

    no_image: list[int] = []  # annotations without an image id: quarantined together, not a stop
    for n, ann in enumerate(jsonindex.stream(index, "annotations.item")):
        if type(ann) is not dict or "image_id" not in ann:
            no_image.append(n)
            continue
        row = lookup(ann["image_id"])
        if row is None:
            orphans[ann["image_id"]] = orphans.get(ann["image_id"], 0) + 1
            continue
        category = ann.get("category_id")
        if type(category) is not int or not -(2**31) <= category < 2**31:
            if category is None:
                errors.setdefault(row, f"{what(n, ann)} has no 'category_id'")
            elif row not in errors:
                errors[row] = f"{what(n, ann)}: category id {category!r} not in taxonomy {tax.name!r}"
                unknown[row] = [category if isinstance(category, (int, str)) else repr(category)]
            continue
        if masks:
            bbox = (0.0, 0.0, 1.0, 1.0)  # dense data paints masks; a box is not needed
        else:
            bbox = ann.get("bbox")
            try:
                x, y, w, h = bbox
                bbox = (float(x), float(y), float(w), float(h))
                total = bbox[0] + bbox[1] + bbox[2] + bbox[3]
                if total - total != 0:  # inf or nan somewhere
                    raise ValueError
            except (TypeError, ValueError):
                errors.setdefault(row, f"{what(n, ann)}: malformed bbox {ann.get('bbox')!r} (want [x, y, w, h])")
                continue
            if bbox[2] <= 0 or bbox[3] <= 0:  # a box of no size supervises nothing
                degenerate += 1
                continue
        is_crowd = bool(ann.get("iscrowd") or ann.get("ignore"))
        if is_crowd and not masks:
            crowded += 1
        add_row(row)
        add_cat(category)
        add_crowd(is_crowd)
        add_box(bbox)
        if masks:
            segmentations.append(ann.get("segmentation"))
    notes[CROWD_NOTE], notes[DEGENERATE_NOTE] = crowded, degenerate

    n_images = len(keys)
    row_of = np.frombuffer(rows, dtype=np.int64) if len(rows) else np.zeros(0, np.int64)
    order = np.argsort(row_of, kind="stable")
    counts = np.bincount(row_of, minlength=n_images).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    box_values = np.frombuffer(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    arrays = {
        "boxes": (box_values[order], starts, counts),
        "categories": ((np.frombuffer(cats, dtype=np.int32) if len(cats) else np.zeros(0, np.int32))[order],
                       starts, counts),
        "crowd": ((np.frombuffer(crowd, dtype=np.uint8) if len(crowd) else np.zeros(0, np.uint8))[order],
                  starts, counts),
    }
    del rows, boxes, cats, crowd, row_of, box_values

    keep = [i for i in range(n_images) if counts[i] or i in errors]
    notes[EMPTY_NOTE] = n_images - len(keep)
    columns = ItemColumns(
        keys=[keys[i] for i in keep],
        images=[images[i] for i in keep],
        root=str(root),
        shared={"index": str(index), "images_dir": folder},
        arrays={name: (values, s[keep], c[keep]) for name, (values, s, c) in arrays.items()},
        errors={pos: errors[i] for pos, i in enumerate(keep) if i in errors},
        unknown={pos: unknown[i] for pos, i in enumerate(keep) if i in unknown},
        notes=notes,
    )
    # The listed size: dense data checks it against the file; box data scales or quarantines on it.
    columns.fields["width"] = [widths[i] for i in keep]
    columns.fields["height"] = [heights[i] for i in keep]
    if masks:
        columns.fields["masks"] = [
            [(segmentations[j], int(arrays["categories"][0][k]))
             for k, j in zip(range(starts[i], starts[i] + counts[i]), order[starts[i]: starts[i] + counts[i]])]
            for i in keep
        ]
    for image_id, count in sorted(orphans.items(), key=lambda kv: str(kv[0])):
        _append_error_row(columns, f"missing-image-{image_id}", f"{folder}/{image_id}",
                          f"{count} annotation(s) name image id {image_id!r} that is not in 'images'")
    if orphans:
        notes[ORPHAN_NOTE] = sum(orphans.values())
    if no_image:
        shown = ", ".join(f"annotations[{n}]" for n in no_image[:5]) + (", ..." if len(no_image) > 5 else "")
        _append_error_row(columns, "annotations-without-image-id", f"{folder}/annotations-without-image-id",
                          f"{len(no_image)} annotation(s) have no 'image_id' (or are not objects): {shown}")
        notes[NO_IMAGE_NOTE] = len(no_image)
    return columns


def _append_error_row(columns: ItemColumns, key: str, image: str, error: str) -> None:
    """One more item, with no boxes, that read() reports as `error` (an index problem of no image)."""
    import numpy as np

    columns.keys.append(sanitize_key(key))
    columns.images.append(image)
    columns.errors[len(columns.keys) - 1] = error
    for name, (values, s, c) in columns.arrays.items():
        columns.arrays[name] = (values, np.append(s, 0), np.append(c, 0))
    for name in columns.fields:
        columns.fields[name].append(None)


def image_entry(n: int, im: dict | None, folder: str) -> tuple[str, str, str | None]:
    """(key, image path, problem or None) of images[n]. A bad entry (no usable id or file_name, or a
    file_name that leaves the images folder) gets a key and a path that name it, and its problem."""
    if im is None or not isinstance(im.get("file_name"), str) or not Path(im["file_name"]).stem:
        return f"bad-image-entry-{n}", f"{folder}/images[{n}]", f"images[{n}] lacks a usable 'file_name'"
    file_name = im["file_name"]
    key = sanitize_key(Path(file_name).stem)
    if inside(folder, file_name) is None:
        problem = relative_problem(file_name)
        return key, f"{folder}/images[{n}]", f"images[{n}]: file_name {problem}: not read"
    if type(im.get("id")) not in (int, str):
        return key, f"{folder}/{file_name}", f"images[{n}] ({file_name}) has id {im.get('id')!r}, not a number or string"
    return key, f"{folder}/{file_name}", None


def _quarantine_shared_keys(keys: list[str], images: list[str], errors: dict[int, str], folder: str) -> None:
    """Entries whose file names make one key (two entries with one file_name): each quarantined under
    a key of its own, naming them all, instead of stopping the split."""
    groups = shared_key_groups(keys)
    taken = set(keys)
    for key, rows in groups.items():
        message = ambiguity(key, [relative_to(images[r], folder) for r in rows])
        for n, row in enumerate(rows, 1):
            keys[row] = ambiguous_key(key, n, taken)
            errors.setdefault(row, message)


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


def index_scale(item: WorkItem, width: int, height: int) -> tuple[float, float] | None:
    """(x, y) factors from the index's image size to the file's, or None when they agree (or the index
    lists no size). A file that is the listed image uniformly resized (a downscaled mirror) scales
    the boxes; any other difference (a rotated or another image) is a BadSample: boxes drawn for one
    size are wrong on another."""
    listed_w, listed_h = item.extra.get("width"), item.extra.get("height")
    if not isinstance(listed_w, (int, float)) or not isinstance(listed_h, (int, float)) or listed_w <= 0 \
            or listed_h <= 0 or (listed_w, listed_h) == (width, height):
        return None
    factor = width / listed_w
    if abs(listed_h * factor - height) > 1:  # not one factor for both axes, to the pixel
        raise BadSample(item.index or item.image,
                        f"{item.key}: the image file is {width}x{height} but the index says {listed_w}x{listed_h} "
                        f"(not a uniform resize): its boxes cannot be placed")
    return factor, height / listed_h


def boxes_for(tax: DatasetTaxonomy, item: WorkItem, width: int, height: int,
              notes: dict[str, int] | None = None) -> list[list[int]]:
    """[x0, y0, x1, y1, class_index] per kept box of a planned item, scaled when the file is the listed
    image resized (index_scale). Crowd boxes (counted at planning), boxes wholly outside the image and
    boxes of ignored classes are dropped, boxes partly outside are clipped; each is counted in `notes`
    by its reason. An unknown category is a BadSample naming the index file and carrying the unknown id
    (for the end-of-convert table)."""
    index = item.index or item.image
    notes = {} if notes is None else notes
    scale = index_scale(item, width, height)
    if scale is not None:
        notes[SCALED_NOTE] = notes.get(SCALED_NOTE, 0) + 1
    boxes = []
    for bbox, category, crowd in zip(item.extra["boxes"], item.extra["categories"], item.extra["crowd"]):
        target = class_of(tax, int(category), index, f"{item.key}: category id")
        if crowd:
            continue
        if scale is not None:
            x, y, w, h = (float(v) for v in bbox)
            bbox = (x * scale[0], y * scale[1], w * scale[0], h * scale[1])
        reason = box_fate(bbox, width, height, target == tax.ignore_index)
        if reason is not None:
            notes[reason] = notes.get(reason, 0) + 1
        box = clip_box(bbox, width, height)
        if box is None or target == tax.ignore_index:
            continue
        boxes.append([*box, target])
    return boxes


def box_fate(bbox, width: int, height: int, ignored: bool) -> str | None:
    """Why a (non-crowd) box is not kept as it is: dropped for its class, dropped for lying wholly
    outside the image, clipped for lying partly outside; None when it is kept whole."""
    if ignored:
        return IGNORED_CLASS_NOTE
    x, y, w, h = (float(v) for v in bbox)
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return OUTSIDE_NOTE
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return CLIPPED_NOTE
    return None
