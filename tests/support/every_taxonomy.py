"""One fixture builder per annotation format, driven only by a taxonomy YAML: it writes a tiny dataset
(a few small images) through the format's registry layout writer, which places the files by that
YAML's split layout (its globs or folders, suffixes, pair_by, index lists, scene_list), and returns,
per expected key, what the reader must produce. The truth is worked out here from the YAML's raw
ids (tax.raw_to_target()), never through reader code.

BUILDERS maps a format name to its builder; a YAML whose format is missing here has no fixture.
Builders are called once per split, all into the same root, as the splits of a real release share
folders (Pascal VOC's JPEGImages)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.convert.layouts.coco import CocoImage
from pipeline.convert.layouts.paired import Pair, wild_folders
from pipeline.taxonomy.schema import DatasetTaxonomy
from support.generated import jpeg, png, write, write_objects365, write_openimages


@dataclass
class Expected:
    image: Path  # the file whose bytes the sample must carry
    label: np.ndarray | None = None  # HxW class indices / ignore index, in the taxonomy's dtype
    boxes: list[list[int]] | None = None


Builder = Callable[[DatasetTaxonomy, Path, str, int], dict[str, Expected]]


class NoBuilder(Exception):
    """The format exists but this layout variant has no fixture builder yet."""


def expected_labels(tax: DatasetTaxonomy, raw: np.ndarray) -> np.ndarray:
    """Raw ids -> targets with a plain dict, one distinct value at a time."""
    table = tax.raw_to_target()
    out = np.zeros(raw.shape, dtype=tax.label_dtype)
    for value in np.unique(raw).tolist():
        out[raw == value] = table[value]
    return out


def raw_pool(tax: DatasetTaxonomy) -> np.ndarray:
    """Every integer raw id a label PNG may hold: each class's and each ignored value that fits."""
    ids = [r for c in tax.classes for r in c.all_raw_ids] + list(tax.ignore_values)
    if not all(isinstance(r, int) for r in ids):
        raise NoBuilder(f"{tax.name}: a label PNG fixture needs integer raw ids")
    return np.array(sorted({r for r in ids if r >= 0}), dtype=np.int64)  # -1 never occurs in a PNG


def raw_map(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A small array holding every pool value at least once, shuffled; sizes differ per sample."""
    width = 16 + 2 * n
    height = max(6, math.ceil(len(pool) / width)) + n
    flat = np.resize(np.random.default_rng(seed).permutation(pool), height * width)
    return flat.reshape(height, width)


def paired(tax: DatasetTaxonomy, root: Path, split: str, n_split: int, labels: list, truths: list) -> dict:
    """Three pairs in the split's layout, written; returns key -> Expected for those the split converts.
    With wildcard folders (a plain folder gets one subfolder), pairs 0 and 1 share a frame name in
    different folders (IDD, ScanNet number frames per folder). With an index or a scene_list, pair 2
    is left out of it and must not be converted."""
    spec, opts = tax.splits[split], tax.format_options
    depth = wild_folders(spec.images)
    png_images = depth is not None and spec.images.lower().endswith(".png")
    depth = 1 if depth is None else depth
    by_number = opts.get("pair_by", "stem") == "number"
    partial = bool(spec.index or opts.get("scene_list"))
    pairs = []
    for n, label in enumerate(labels):
        shared = 0 if depth and n == 1 else n  # same frame name in another folder
        number = 1 + 10 * n_split + shared
        h, w = (label["imgHeight"], label["imgWidth"]) if isinstance(label, dict) else label.shape[:2]
        rgb = np.random.default_rng(n).integers(0, 255, (h, w, 3), dtype=np.uint8)
        pairs.append(Pair(
            name=f"{number:06d}" if by_number else f"s{n_split}x{shared}",
            image=png(rgb) if png_images else jpeg(w, h, n),
            label=label,
            folders=tuple(f"{'abc'[n]}{d}" for d in range(depth)),
            label_name=f"{number:08d}" if by_number else None,  # the label's frame number, padded otherwise
            listed=not (partial and n == 2),
        ))
    placed = write(tax, root, split, pairs)
    kept = zip(placed.items(), pairs, truths)
    return {key: Expected(image, truth) for (key, image), pair, truth in kept if pair.listed}


def dense_pairs(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """Label PNGs paired with images, holding every raw id; the writer encodes them as the format
    stores them (mapillary: palette index; png_folder: palette when every class has a colour; else L)."""
    pool = raw_pool(tax)
    raws = [raw_map(pool, n, seed=100 * n_split + n) for n in range(3)]
    return paired(tax, root, split, n_split, raws, [expected_labels(tax, raw) for raw in raws])


def build_ade20k(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    variant = tax.format_options.get("variant", "challenge")
    if variant != "challenge":
        raise NoBuilder(f"ade20k variant {variant!r} has no fixture builder (only 'challenge')")
    return dense_pairs(tax, root, split, n_split)


def build_png_folder(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    mode = tax.format_options.get("mode", "index")
    if mode == "index":
        return dense_pairs(tax, root, split, n_split)
    assert mode == "color", f"{tax.name}: unknown png_folder mode {mode!r}"
    colours = [list(c.color) for c in tax.classes] + [
        list(c) for c in tax.format_options.get("ignore_colors", [])
    ]
    targets = [tax.ignore_index if c.ignore else i for i, c in enumerate(tax.classes)]
    targets += [tax.ignore_index] * (len(colours) - len(tax.classes))
    which = [raw_map(np.arange(len(colours)), n, seed=100 * n_split + n) for n in range(3)]
    rgb = [np.array(colours, dtype=np.uint8)[w] for w in which]
    return paired(tax, root, split, n_split, rgb, [np.array(targets, dtype=tax.label_dtype)[w] for w in which])


def build_idd(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """Level-3 id PNGs for samples 0 and 2; sample 1 (same frame name as 0, another folder) has only
    the polygon JSON: background, a band, and two boxes, the last drawn on top."""
    names = dict(tax.format_options["polygon_label_to_level3"])
    raws = [raw_map(raw_pool(tax), n, seed=100 * n_split + n) for n in range(3)]
    counted = [k for k, v in names.items() if v != 255]
    raws[1] = np.full((20, 30), names.get("unlabeled", 255), dtype=np.int64)
    objects = []
    for label, (x0, y0, x1, y1) in (
        (counted[0], (0, 12, 29, 19)), (counted[len(counted) // 2], (3, 2, 12, 15)), (counted[-1], (8, 5, 20, 9))
    ):
        objects.append({"label": label, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "deleted": 0})
        raws[1][y0 : y1 + 1, x0 : x1 + 1] = names[label]  # a filled polygon includes its border
    labels = [raws[0], {"imgHeight": 20, "imgWidth": 30, "objects": objects}, raws[2]]
    return paired(tax, root, split, n_split, labels, [expected_labels(tax, raw) for raw in raws])


def build_coco_panoptic(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """Two images, each with three segments of different categories and a void (id 0) strip; segment
    ids use all three channels so R + 256 G + 65536 B is exercised."""
    cats = [c.all_raw_ids[-1] for c in tax.classes]  # a class that merges several ids: its last one
    table = tax.raw_to_target()
    images, labels = [], []
    for n in range(2):
        height, width = 10 + n, 14
        ids = [5 + n, 256 * 3 + 1, 65536 * 2 + 256 + 9]
        chosen = [cats[0], cats[len(cats) // 2 + n], cats[-1]]
        seg = np.zeros((height, width), dtype=np.int64)
        seg[:, 2:6], seg[:, 6:10], seg[:, 10:] = ids
        segments = [{"id": i, "category_id": c, "area": 1} for i, c in zip(ids, chosen)]
        images.append(CocoImage(100 + n, f"{n_split:04d}{n:08d}.jpg", width, height, jpeg(width, height, n), segments, seg))
        label = np.full((height, width), tax.ignore_index, dtype=tax.label_dtype)
        for i, c in zip(ids, chosen):
            label[seg == i] = table[c]
        labels.append(label)
    placed = write(tax, root, split, images)
    return {stem: Expected(image, label) for (stem, image), label in zip(placed.items(), labels)}


def big_and_small_masks(tax: DatasetTaxonomy) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The raw ids of the taxonomy's first two classes and a 12x16 mask for each: a large one and a
    small one inside it (a reader must keep the small one on top), with pixels neither covers."""
    big_id, small_id = [c.raw_id for c in tax.classes if not c.ignore][:2]
    big = np.zeros((12, 16), np.uint8)
    big[1:11, 1:12] = 1
    small = np.zeros((12, 16), np.uint8)
    small[3:6, 4:8] = 1
    return big_id, small_id, big, small


def build_coco_instances(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """One image with a large and a small RLE mask inside it (the small one must stay on top) and
    pixels no mask covers (ignore); box supervision gets the two boxes instead."""
    from pycocotools import mask as mask_utils

    table = tax.raw_to_target()
    big_id, small_id, big, small = big_and_small_masks(tax)
    height, width = big.shape
    anns = []
    for n, (mask, cat, bbox) in enumerate(((small, small_id, [4, 3, 4, 3]), (big, big_id, [1, 1, 11, 10]))):
        rle = mask_utils.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
        anns.append(
            {"id": n + 1, "image_id": 7, "category_id": cat, "segmentation": rle, "bbox": bbox, "iscrowd": 0}
        )
    stem = f"inst_{n_split}"
    [image] = write(tax, root, split, [CocoImage(7, f"{stem}.jpg", width, height, jpeg(width, height, 3), anns)]).values()
    if tax.supervision.value == "box":
        boxes = [[4, 3, 8, 6, table[small_id]], [1, 1, 12, 11, table[big_id]]]
        return {stem: Expected(image=image, boxes=[b for b in boxes if b[4] != tax.ignore_index])}
    label = np.full((height, width), tax.ignore_index, dtype=tax.label_dtype)
    label[big == 1] = table[big_id]
    label[small == 1] = table[small_id]
    return {stem: Expected(image=image, label=label)}


def build_openimages(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    spec = tax.splits[split]
    truth = write_openimages(tax, root, split)
    return {key: Expected(root / Path(spec.images).parent / f"{key}.jpg", label) for key, label in truth.items()}


def build_objects365(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    spec = tax.splits[split]
    truth = write_objects365(tax, root, split)
    where = {
        "objects365_v1_00000001": root / spec.images / "patch0" / "objects365_v1_00000001.jpg",
        "objects365_v2_00000002": root / spec.images / "objects365_v2_00000002.jpg",
    }
    return {key: Expected(image=where[key], boxes=boxes) for key, boxes in truth.items()}


def build_youtube_vis(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """One video of two frames: a large object of the first class with a small one of the second on
    top in frame 0, only the small one in frame 1; uncovered pixels are raw id 0 (background)."""
    from pipeline.convert.layouts.youtube_vis import Track, Video
    from pipeline.convert.readers import FORMATS

    table = tax.raw_to_target()
    big_id, small_id, big, small = big_and_small_masks(tax)
    height, width = big.shape
    video = Video(f"vid{n_split}a", [jpeg(width, height, 5), jpeg(width, height, 6)], width, height,
                  [Track(small_id, [small, small]), Track(big_id, [big, None])])
    frames = FORMATS["youtube_vis"].write_layout(tax, root, split, [video])
    truth = {}
    for f, key in enumerate(sorted(frames)):
        label = np.full((height, width), table[0], dtype=tax.label_dtype)
        if f == 0:
            label[big == 1] = table[big_id]
        label[small == 1] = table[small_id]
        truth[key] = Expected(image=frames[key], label=label)
    return truth


BUILDERS: dict[str, Builder] = {
    "ade20k": build_ade20k,
    "coco_panoptic": build_coco_panoptic,
    "mapillary": dense_pairs,
    "cityscapes": dense_pairs,
    "bdd100k": dense_pairs,
    "idd": build_idd,
    "sunrgbd": dense_pairs,
    "openimages_v6": build_openimages,
    "objects365": build_objects365,
    "png_folder": build_png_folder,
    "coco_instances": build_coco_instances,
    "youtube_vis": build_youtube_vis,
}
