"""Synthetic indexes with the real field layouts, at a fraction of the real size.

Objects365 v2 train (zhiyuan_objv2_train.json): 1,742,292 images and 25,416,683 boxes, about 4.8 GB;
each image entry has height, id, license, width, file_name (images/v1/patchN/...), url, each
annotation id, iscrowd, isfake, area, isreflected, bbox (floats with up to 4 decimals), image_id,
category_id. OpenImages V6 train-annotations-object-segmentation.csv: 2,686,666 rows (one per mask)
on 944,037 images, columns MaskPath, ImageID, LabelName, BoxID, box corners, PredictedIoU, Clicks.
Written straight to disk in chunks, so generating 100% takes little memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OBJECTS365_IMAGES = 1_742_292
OBJECTS365_BOXES = 25_416_683
OPENIMAGES_ROWS = 2_686_666
OPENIMAGES_IMAGES = 944_037


def objects365_index(path: Path, fraction: float, categories: list[tuple[int, str]], seed: int = 0) -> dict:
    """Write a train index with `fraction` of the real counts; returns the counts written."""
    rng = np.random.default_rng(seed)
    n_images = max(1, round(OBJECTS365_IMAGES * fraction))
    n_boxes = max(1, round(OBJECTS365_BOXES * fraction))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write('{"images": [')
        for start in range(0, n_images, 100_000):
            ids = np.arange(start, min(n_images, start + 100_000)) + 1
            w = rng.integers(400, 1025, len(ids))
            h = rng.integers(300, 1025, len(ids))
            parts = [
                f'{{"height": {hh}, "id": {i}, "license": 5, "width": {ww}, '
                f'"file_name": "images/v1/patch{i % 51}/objects365_v1_{i:08d}.jpg", "url": ""}}'
                for i, ww, hh in zip(ids.tolist(), w.tolist(), h.tolist())
            ]
            f.write(("" if start == 0 else ", ") + ", ".join(parts))
        f.write('], "annotations": [')
        for start in range(0, n_boxes, 200_000):
            m = min(n_boxes, start + 200_000) - start
            image = rng.integers(1, n_images + 1, m)  # boxes are not grouped by image in the file
            cat = rng.integers(1, len(categories) + 1, m)
            xywh = np.round(rng.random((m, 4)) * [600, 500, 300, 300], 4)
            crowd = (rng.random(m) < 0.001).astype(int)
            parts = [
                f'{{"id": {start + k + 1}, "iscrowd": {c}, "isfake": 0, "area": {bw * bh:.4f}, "isreflected": 0, '
                f'"bbox": [{x}, {y}, {bw}, {bh}], "image_id": {im}, "category_id": {ct}}}'
                for k, (im, ct, (x, y, bw, bh), c) in enumerate(zip(image.tolist(), cat.tolist(), xywh.tolist(),
                                                                     crowd.tolist()))
            ]
            f.write(("" if start == 0 else ", ") + ", ".join(parts))
        f.write('], "categories": ')
        f.write(json.dumps([{"name": name, "id": cid} for cid, name in categories]))
        f.write(', "licenses": [{"name": "CC BY 4.0", "id": 5, "url": ""}]}')
    return {"images": n_images, "boxes": n_boxes, "bytes": path.stat().st_size}


def openimages_csv(path: Path, fraction: float, mids: list[str], seed: int = 0) -> dict:
    """Write a segmentation CSV with `fraction` of the real rows; returns the counts written."""
    rng = np.random.default_rng(seed)
    n_rows = max(1, round(OPENIMAGES_ROWS * fraction))
    n_images = max(1, round(OPENIMAGES_IMAGES * fraction))
    path.parent.mkdir(parents=True, exist_ok=True)
    clicks = ";".join(f"0.{k:05d} 0.{k + 7:05d} {k % 2}" for k in range(11))
    with open(path, "w") as f:
        f.write("MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\n")
        for start in range(0, n_rows, 200_000):
            m = min(n_rows, start + 200_000) - start
            image = np.sort(rng.integers(0, n_images, m))  # the release lists rows by mask name
            mid = rng.integers(0, len(mids), m)
            lines = []
            for k, (im, md) in enumerate(zip(image.tolist(), mid.tolist())):
                image_id = f"{im * 2654435761 % (1 << 64):016x}"
                label = mids[md]
                box = f"{(start + k) * 40503 % (1 << 32):08x}"
                lines.append(f"{image_id}_{label.replace('/', '')}_{box}.png,{image_id},{label},{box},"
                             f"0.1,0.9,0.2,0.8,0.85,{clicks}\n")
            f.write("".join(lines))
    return {"images": n_images, "boxes": n_rows, "bytes": path.stat().st_size}
