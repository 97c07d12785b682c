"""Synthetic inputs at realistic sizes, in each format's on-disk layout, for the conversion benchmarks.

Images are smooth colour fields with noise (so JPEG/PNG sizes are realistic); label maps are
piecewise-constant regions of the taxonomy's raw ids (so label PNGs compress like real ones).
`templates` distinct samples are generated and the rest are hard links to them: the work per
image is the same, and generating 20k images would otherwise take longer than converting them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.layouts import panoptic_rgb, write_coco_index
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


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.link(src, dst)


def _reuse_template(i: int, templates: int, paths_for) -> tuple[Path, Path] | None:
    """Sample i's (image, annotation) paths, ready to write; None when it was hard-linked to template
    i % templates instead (past the first `templates`, samples repeat: the work per image is the same)."""
    img, ann = paths_for(i)
    if i >= templates:
        for src, dst in zip(paths_for(i % templates), (img, ann)):
            _link(src, dst)
        return None
    img.parent.mkdir(parents=True, exist_ok=True)
    ann.parent.mkdir(parents=True, exist_ok=True)
    return img, ann


def generate(fmt: str, tax: DatasetTaxonomy, root: Path, split: str, n: int, w: int, h: int,
             templates: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ids = _raw_ids(tax)
    if fmt == "ade20k":
        def ade_paths(i: int) -> tuple[Path, Path]:
            key = f"ADE_{split}_{i:08d}"
            return root / f"images/{split}/{key}.jpg", root / f"annotations/{split}/{key}.png"

        for i in range(n):
            if paths := _reuse_template(i, templates, ade_paths):
                _image(rng, w, h).save(paths[0], quality=90)
                Image.fromarray(_regions(rng, w, h, [0, *ids]).astype(np.uint8)).save(paths[1])
    elif fmt == "cityscapes":
        def city_paths(i: int) -> tuple[Path, Path]:
            stem = f"city_{i:06d}_000019"
            return (root / f"leftImg8bit/{split}/city/{stem}_leftImg8bit.png",
                    root / f"gtFine/{split}/city/{stem}_gtFine_labelIds.png")

        values = [v for v in [*ids, *tax.ignore_values] if isinstance(v, int) and 0 <= v < 256]
        for i in range(n):
            if paths := _reuse_template(i, templates, city_paths):
                _image(rng, w, h).save(paths[0], compress_level=1)
                Image.fromarray(_regions(rng, w, h, values).astype(np.uint8)).save(paths[1])
    elif fmt == "coco_panoptic":
        spec = tax.splits[split]
        images, annotations = [], []
        for i in range(n):
            name = f"{i:012d}"
            img, png = root / spec.images / f"{name}.jpg", root / spec.annotations / f"{name}.png"
            t = i % templates
            if i >= templates:
                _link(root / spec.images / f"{t:012d}.jpg", img)
                _link(root / spec.annotations / f"{t:012d}.png", png)
                segments = annotations[t]["segments_info"]
            else:
                img.parent.mkdir(parents=True, exist_ok=True)
                png.parent.mkdir(parents=True, exist_ok=True)
                _image(rng, w, h).save(img, quality=90)
                segs = _regions(rng, w, h, list(range(1, 40)))  # segment ids 1..39 (0 = void)
                Image.fromarray(panoptic_rgb(segs * 37)).save(png)  # distinct ids beyond 255 exercise G too
                present = sorted(set((segs * 37).ravel().tolist()))
                segments = [{"id": s, "category_id": int(rng.choice(ids))} for s in present]
            images.append({"id": i, "file_name": f"{name}.jpg", "width": w, "height": h})
            annotations.append({"image_id": i, "file_name": f"{name}.png", "segments_info": segments})
        write_coco_index(root / spec.index, images, annotations, [])
    else:
        raise ValueError(f"no synthetic generator for format {fmt!r}")
