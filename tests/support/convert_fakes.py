"""A tiny reader and dataset generator for the convert tests, independent of the real readers.

Layout: ROOT/<split>/images/KEY.png|jpg and ROOT/<split>/labels/KEY.png (raw ids per pixel).
Keys starting with "explode" make read() raise a plain RuntimeError (a reader bug, not bad data).
$TOY_READ_DELAY (seconds) slows every read, so a subprocess can be killed mid-job.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.readers.base import BadSample, FunctionReader, Sample, WorkItem
from pipeline.taxonomy.schema import ClassEntry, DatasetTaxonomy, SplitSpec

W, H = 32, 24


def toy_taxonomy(num_classes: int = 3, supervision: str = "dense", name: str = "toy") -> DatasetTaxonomy:
    """Raw id 0 is ignored; raw ids 1..num_classes are classes 0..num_classes-1."""
    return DatasetTaxonomy(
        name=name,
        version="1",
        homepage="https://example.org",
        format="coco_instances" if supervision == "box" else "png_folder",
        supervision=supervision,
        splits={"train": SplitSpec(images="train/images", annotations="train/labels"),
                "val": SplitSpec(images="val/images", annotations="val/labels")},
        ignore_values=[0],
        classes=[ClassEntry(name=f"class{i}", label="thing", raw_id=i + 1) for i in range(num_classes)],
    )


def make_toy_dataset(root: Path, n: int, split: str = "train", seed: int = 0, max_raw: int = 3) -> list[str]:
    """n samples with random content; every 4th image is a JPEG. Returns the keys."""
    rng = np.random.default_rng(seed)
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "labels").mkdir(parents=True, exist_ok=True)
    keys = []
    for i in range(n):
        key = f"img_{i:04d}"
        rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        ext = "jpg" if i % 4 == 3 else "png"
        Image.fromarray(rgb).save(root / split / "images" / f"{key}.{ext}")
        raw = rng.integers(0, max_raw + 1, (H, W))
        raw_img = Image.fromarray(raw.astype(np.uint8)) if max_raw < 256 else Image.fromarray(raw.astype(np.uint16))
        raw_img.save(root / split / "labels" / f"{key}.png")
        keys.append(key)
    return keys


def toy_plan(tax: DatasetTaxonomy, root: Path, split: str):
    spec = tax.splits[split]
    for image in sorted((Path(root) / spec.images).iterdir()):
        ann = Path(root) / spec.annotations / f"{image.stem}.png"
        yield WorkItem(key=image.stem, image=str(image), annotation=str(ann))


def _open_image(item: WorkItem) -> tuple[bytes, str, int, int]:
    data = Path(item.image).read_bytes()
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for a bad file
        raise BadSample(item.image, f"cannot decode image: {e}") from None
    return data, {"PNG": "png", "JPEG": "jpg"}[im.format], im.width, im.height


def toy_read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    if os.environ.get("TOY_READ_DELAY"):
        time.sleep(float(os.environ["TOY_READ_DELAY"]))
    if item.key.startswith("explode"):
        raise RuntimeError("the reader has a bug")
    data, ext, w, h = _open_image(item)
    if not Path(item.annotation).exists():
        raise BadSample(item.annotation, "annotation file missing")
    try:
        raw = np.array(Image.open(item.annotation)).astype(np.int64)
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for a bad file
        raise BadSample(item.annotation, f"cannot decode annotation: {e}") from None
    if raw.shape != (h, w):
        raise BadSample(item.annotation, f"annotation is {raw.shape[1]}x{raw.shape[0]} but the image is {w}x{h}")
    lut = np.full(int(raw.max()) + 1, -1, dtype=np.int64)
    for raw_id, target in tax.raw_to_target().items():
        if raw_id < lut.size:
            lut[raw_id] = target
    label = lut[raw]
    if (label < 0).any():
        raise BadSample(item.annotation, f"unknown raw values {sorted(set(raw[label < 0].tolist()))[:5]}")
    sources = {"image": Path(item.image).name, "annotation": Path(item.annotation).name}
    return Sample(item.key, data, ext, w, h, label.astype(tax.label_dtype), sources=sources)


def toy_box_read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    """Box data: two boxes per image derived from the key number, no label map."""
    data, ext, w, h = _open_image(item)
    n = int(item.key.split("_")[1])
    boxes = [[0, 0, 10 + n % 5, 12, n % tax.num_classes], [5, 4, w, h, (n + 1) % tax.num_classes]]
    return Sample(item.key, data, ext, w, h, None, boxes=boxes, sources={"image": Path(item.image).name})


TOY_READER = FunctionReader(plan=toy_plan, read=toy_read)
TOY_BOX_READER = FunctionReader(plan=toy_plan, read=toy_box_read)
