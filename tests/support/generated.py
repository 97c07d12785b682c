"""Fixtures for formats without real samples: OpenImages V6, Objects365, BDD100K, IDD (PNG and
polygons). Each writes through the format's layout writer (pipeline/convert/layouts) and returns the
truth the test checks against, worked out here independently of the readers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.layouts import png
from pipeline.convert.layouts.coco import CocoImage
from pipeline.convert.layouts.openimages import ObjectMask, OpenImagesImage
from pipeline.convert.layouts.paired import Pair
from pipeline.convert.readers import FORMATS
from pipeline.taxonomy.schema import DatasetTaxonomy


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def write(tax: DatasetTaxonomy, root: Path, split: str, content: list, **index) -> dict[str, Path]:
    """Through the format's registry entry, as the demo and the benchmarks write: key -> image file."""
    return FORMATS[tax.format].write_layout(tax, root, split, content, **index)


def string_ids(tax: DatasetTaxonomy, n: int) -> list[str]:
    """The first n string raw ids of classes that are not ignored."""
    ids = [r for c in tax.classes if not c.ignore for r in c.all_raw_ids if isinstance(r, str)]
    return ids[:n]


# --- OpenImages V6 ---------------------------------------------------------------------------
def write_openimages(tax: DatasetTaxonomy, root: Path, split: str) -> dict[str, np.ndarray]:
    """Two images. Image A (64x48) has half-resolution masks: a large one and a small one inside it
    (the small one must win) and a strip no mask covers (ignore). Image B (40x30) has one mode-1 mask
    at full resolution. Returns key -> expected label."""
    big_mid, small_mid = string_ids(tax, 2)
    table = tax.raw_to_target()
    ignore = tax.ignore_index
    a, b = "0a1b2c3d4e5f6789", "1f2e3d4c5b6a7980"
    big = np.zeros((24, 32), bool)
    big[:, :20] = True
    small = np.zeros((24, 32), bool)
    small[5:10, 4:9] = True
    only = np.zeros((30, 40), bool)
    only[3:20, 10:30] = True
    write(tax, root, split, [
        # the small mask is listed first: order must not decide who wins
        OpenImagesImage(a, jpeg(64, 48, 1), [ObjectMask(small_mid, "aa01", small), ObjectMask(big_mid, "aa02", big)]),
        OpenImagesImage(b, jpeg(40, 30, 2), [ObjectMask(small_mid, "bb01", only, mode="1")]),
    ])

    expected_a = np.full((48, 64), ignore, dtype=tax.label_dtype)
    expected_a[np.kron(big, np.ones((2, 2), bool))] = table[big_mid]  # nearest 2x upscale
    expected_a[np.kron(small, np.ones((2, 2), bool))] = table[small_mid]
    expected_b = np.full((30, 40), ignore, dtype=tax.label_dtype)
    expected_b[only] = table[small_mid]
    return {a: expected_a, b: expected_b}


# --- Objects365 --------------------------------------------------------------------------------
def write_objects365(tax: DatasetTaxonomy, root: Path, split: str) -> dict[str, list[list[int]]]:
    """Two images with boxes that need clipping, rounding outwards and dropping. The first uses the
    v2 release's file_name ("images/v1/patch0/...") with the file unpacked under <images>/patch0/.
    The second has only a crowd box (kept out of boxes) and one outside the image. Returns key ->
    expected boxes."""
    table = tax.raw_to_target()
    c1, c2 = [c.raw_id for c in tax.classes if not c.ignore][:2]
    annotations = [
        {"id": 10, "image_id": 1, "category_id": c1, "bbox": [10.2, 20.7, 30.1, 15.0], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": c2, "bbox": [90.0, 70.0, 25.0, 25.0], "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": c1, "bbox": [5.0, 5.0, 0.0, 10.0], "iscrowd": 0},
        {"id": 13, "image_id": 2, "category_id": c2, "bbox": [-4.0, -3.0, 10.0, 8.0], "iscrowd": 1},
        {"id": 14, "image_id": 2, "category_id": c1, "bbox": [60.0, 10.0, 5.0, 5.0], "iscrowd": 0},
    ]
    write(tax, root, split, [
        CocoImage(1, "images/v1/patch0/objects365_v1_00000001.jpg", 100, 80, jpeg(100, 80, 3), annotations[:3]),
        CocoImage(2, "objects365_v2_00000002.jpg", 50, 40, jpeg(50, 40, 4), annotations[3:]),
        CocoImage(3, "objects365_v2_00000003.jpg", 50, 40, None),  # no boxes, no file
    ])
    return {
        "objects365_v1_00000001": [[10, 20, 41, 36, table[c1]], [90, 70, 100, 80, table[c2]]],
        "objects365_v2_00000002": [],  # its crowd box is not a box; the other lies outside the image
    }


# --- BDD100K -----------------------------------------------------------------------------------
def write_bdd100k(tax: DatasetTaxonomy, root: Path, split: str) -> dict[str, np.ndarray]:
    """Two images with random train-id masks (every class plus 255). Returns key -> raw mask."""
    raw_ids = sorted(r for c in tax.classes for r in c.all_raw_ids) + list(tax.ignore_values)
    rng = np.random.default_rng(5)
    out = {}
    for n, name in enumerate(["0a0a0b1a-7c39d841", "7d2f7975-e0c1c5a7"]):
        out[name] = rng.choice(np.array(raw_ids, dtype=np.uint8), size=(36, 64))
    write(tax, root, split, [Pair(name, jpeg(64, 36, 10 + n), raw) for n, (name, raw) in enumerate(out.items())])
    return out


# --- IDD ---------------------------------------------------------------------------------------
def write_idd(tax: DatasetTaxonomy, root: Path, split: str) -> dict[str, np.ndarray]:
    """Image 1 has a level3 id PNG; image 2 has only _polygons.json: background, a road over the
    bottom half, then a car and a '<name>group' label on top. Both sit in folder "0", so their keys
    start with it. Returns key -> expected raw level3."""
    names = tax.format_options["polygon_label_to_level3"]
    counted = {k: v for k, v in names.items() if v != 255}
    road = "road" if "road" in counted else next(iter(counted))
    car = "car" if "car" in counted else list(counted)[1]
    person = "person" if "person" in counted else list(counted)[2]

    rng = np.random.default_rng(7)
    level3 = sorted(r for c in tax.classes for r in c.all_raw_ids) + list(tax.ignore_values)
    raw1 = rng.choice(np.array(level3, dtype=np.uint8), size=(30, 48))
    W, H = 48, 30
    image1, image2 = (png(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)) for _ in range(2))
    objects = [
        {"label": road, "polygon": [[0, 15], [47, 15], [47, 29], [0, 29]], "deleted": 0},
        {"label": car, "polygon": [[5, 10], [20, 10], [20, 20], [5, 20]], "deleted": 0},
        {"label": f"{person}group", "polygon": [[30, 2], [35, 2], [35, 25], [30, 25]], "deleted": 0},
        {"label": car, "polygon": [[40, 0], [47, 0], [47, 5], [40, 5]], "deleted": 1},  # deleted: skipped
    ]
    polygons = {"imgHeight": H, "imgWidth": W, "objects": objects}
    write(tax, root, split, [Pair("000001", image1, raw1, ("0",)), Pair("000002", image2, polygons, ("0",))])
    raw2 = np.full((H, W), names.get("unlabeled", 255), dtype=np.uint8)
    raw2[15:30, 0:48] = names[road]  # PIL fills a polygon including its border
    raw2[10:21, 5:21] = names[car]
    raw2[2:26, 30:36] = names[person]
    return {"0_000001": raw1, "0_000002": raw2}
