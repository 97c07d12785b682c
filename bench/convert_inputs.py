"""Synthetic inputs at realistic sizes, in each format's on-disk layout, for the conversion benchmarks.

Images are smooth colour fields with noise (so JPEG/PNG sizes are realistic); label maps are
piecewise-constant regions of the taxonomy's raw ids (so label PNGs compress like real ones).
`templates` distinct samples are generated and the rest are hard links to them: the work per
image is the same, and generating 20k images would otherwise take longer than converting them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.readers import FORMATS
from pipeline.taxonomy.schema import DatasetTaxonomy

# (format, taxonomy file, split, width, height, image format)
CASES = [
    ("ade20k", "ade20k-150.yaml", "training", 683, 512, "jpg"),
    ("cityscapes", "cityscapes.yaml", "train", 2048, 1024, "png"),
    ("coco_panoptic", "coco-panoptic-133.yaml", "train2017", 640, 480, "jpg"),
]


def _image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BILINEAR)
    noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _regions(rng: np.random.Generator, w: int, h: int, values: list[int]) -> np.ndarray:
    """About 30 blocky regions, each one of `values`."""
    grid = rng.choice(np.asarray(values), size=(6, 8))
    label = np.array(Image.fromarray(grid.astype(np.int32)).resize((w, h), Image.NEAREST))
    for _ in range(8):  # a few objects on top of the background regions
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        label[y0 : y0 + int(rng.integers(20, h // 3)), x0 : x0 + int(rng.integers(20, w // 3))] = rng.choice(values)
    return label


def _raw_ids(tax: DatasetTaxonomy) -> list[int]:
    return [int(r) for c in tax.classes for r in c.all_raw_ids if isinstance(r, int)]


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def generate(fmt: str, tax: DatasetTaxonomy, root: Path, split: str, n: int, w: int, h: int,
             templates: int = 64, seed: int = 0) -> None:
    """n samples through the format's layout writer; sample i repeats template i % templates (the same
    objects, which the writer hard-links)."""
    from pipeline.convert.layouts.coco import CocoImage
    from pipeline.convert.layouts.paired import Pair

    rng = np.random.default_rng(seed)
    ids = _raw_ids(tax)
    made: list = []
    if fmt == "ade20k":
        for _ in range(min(n, templates)):
            image = _encoded(_image(rng, w, h), "JPEG", quality=90)
            made.append((image, _regions(rng, w, h, [0, *ids]).astype(np.uint8)))
        content = [Pair(f"ADE_{split}_{i:08d}", *made[i % templates]) for i in range(n)]
    elif fmt == "cityscapes":
        values = [v for v in [*ids, *tax.ignore_values] if isinstance(v, int) and 0 <= v < 256]
        for _ in range(min(n, templates)):
            image = _encoded(_image(rng, w, h), "PNG", compress_level=1)
            made.append((image, _regions(rng, w, h, values).astype(np.uint8)))
        content = [Pair(f"city_{i:06d}_000019", *made[i % templates], folders=("city",)) for i in range(n)]
    elif fmt == "coco_panoptic":
        for _ in range(min(n, templates)):
            image = _encoded(_image(rng, w, h), "JPEG", quality=90)
            segs = _regions(rng, w, h, list(range(1, 40))) * 37  # segment ids 37..1443 (0 = void) exercise G too
            present = sorted(set(segs.ravel().tolist()))
            made.append((image, [{"id": s, "category_id": int(rng.choice(ids))} for s in present], segs))
        content = [CocoImage(i, f"{i:012d}.jpg", w, h, *made[i % templates]) for i in range(n)]
    else:
        raise ValueError(f"no synthetic generator for format {fmt!r}")
    index = {"categories": []} if fmt == "coco_panoptic" else {}
    FORMATS[fmt].write_layout(tax, root, split, content, **index)
