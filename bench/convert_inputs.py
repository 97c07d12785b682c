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
    # The two sets that are ~1.9M of the paper's ~2M images; sizes near their releases' typical ones.
    ("openimages_v6", "openimages-v6-seg.yaml", "train", 1024, 768, "jpg"),
    ("objects365", "objects365-v2.yaml", "train", 1024, 683, "jpg"),
]
BOXES_PER_IMAGE = 15  # Objects365 v2: ~25.4M boxes over 1.74M train images
MASKS_PER_IMAGE = 3  # OpenImages V6: 2.69M masks over 944K train images


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


def _boxes(rng: np.random.Generator, image_id: int, w: int, h: int, ids: list[int]) -> list[dict]:
    """COCO-style box annotations of one image: [x, y, width, height], a class id each."""
    out = []
    for k in range(BOXES_PER_IMAGE):
        bw, bh = int(rng.integers(8, w // 2)), int(rng.integers(8, h // 2))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        out.append({"id": image_id * 100 + k, "image_id": image_id, "category_id": int(rng.choice(ids)),
                    "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})
    return out


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
    elif fmt == "objects365":
        for _ in range(min(n, templates)):
            made.append(_encoded(_image(rng, w, h), "JPEG", quality=90))
        content = [CocoImage(i + 1, f"images/v1/patch{i % 51}/objects365_v1_{i:08d}.jpg", w, h, made[i % templates],
                             _boxes(rng, i + 1, w, h, ids)) for i in range(n)]
    elif fmt == "openimages_v6":
        from pipeline.convert.layouts.openimages import ObjectMask, OpenImagesImage

        mids = [str(r) for c in tax.classes for r in c.all_raw_ids if isinstance(r, str)]
        for _ in range(min(n, templates)):
            masks = [ObjectMask(str(rng.choice(mids)), f"{k:08x}", _regions(rng, w // 2, h // 2, [0, 1]))
                     for k in range(MASKS_PER_IMAGE)]
            made.append((_encoded(_image(rng, w, h), "JPEG", quality=90), masks))
        content = [OpenImagesImage(f"{i:016x}", *made[i % templates]) for i in range(n)]
    else:
        raise ValueError(f"no synthetic generator for format {fmt!r}")
    index = {"categories": []} if fmt == "coco_panoptic" else {}
    FORMATS[fmt].write_layout(tax, root, split, content, **index)
