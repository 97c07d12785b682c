"""Decode one shard sample and augment it: short edge to a base size, random crop, flip, colour
jitter, blur and (optionally) image corruption, as the paper does. The random rescale on top of the
short-edge resize (`scale`) is ours, not the paper's; set scale to (1, 1) to leave it out. Boxes
move with the image; a box stays a training box (L_WD) only while enough of it is in the crop.

Speed: only the crop window is resampled (PIL's resize with `box=`), and JPEGs are decoded at a
reduced scale (Image.draft) when the target is at most half the original size.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from pipeline.shard_format import SampleError, ShardSample, parse_sample


@dataclass(frozen=True)
class AugmentParams:
    short_edge: int = 1080
    scale: tuple[float, float] = (0.5, 2.0)
    crop: tuple[int, int] = (640, 640)  # height, width
    flip: bool = True
    jitter: float = 0.3  # brightness / contrast / saturation factors drawn from [1-j, 1+j]
    blur_prob: float = 0.2
    blur_radius: tuple[float, float] = (0.1, 2.0)
    draft: bool = True
    box_min_visible: float = 0.5  # keep a box only when at least this share of its area is in the crop
    corruption_prob: float = 0.0  # chance of one image corruption per sample (see trainer/corrupt.py)
    corruption_kinds: tuple[str, ...] = ()
    corruption_severity: tuple[int, int] = (1, 3)


def _label_array(key: str, data: bytes, ignore_index: int, box, out_size) -> np.ndarray:
    from PIL import Image

    try:
        label = Image.open(io.BytesIO(data))
        mode = label.mode
        if mode in ("L", "I;16", "I;16B", "I", "P"):
            label = label.resize(out_size, Image.NEAREST, box=box)
    except Exception as e:  # PIL raises several types for corrupt files
        raise SampleError(key, f"label PNG cannot be decoded: {e}") from e
    if mode not in ("L", "I;16", "I;16B", "I", "P"):
        raise SampleError(key, f"label PNG has mode {mode}; expected L or I;16")
    arr = np.asarray(label).astype(np.int64)
    arr[arr == ignore_index] = -1  # one ignore value (-1) across datasets from here on
    return arr


def decode_sample(raw: dict, rng: np.random.Generator, p: AugmentParams | None) -> dict:
    """Raw webdataset sample -> dict(image uint8 HxWx3, target int64 HxW with -1 ignore, boxes, ...).

    With p None the image keeps its size (evaluation)."""
    from PIL import Image, ImageEnhance, ImageFilter

    sample = parse_sample(raw)
    key, ext = sample.key, sample.image_ext
    try:
        im = Image.open(io.BytesIO(sample.image))
        w0, h0 = im.size
    except Exception as e:  # PIL raises several types for corrupt files
        raise SampleError(key, f"image cannot be decoded: {e}") from e

    if p is None:
        f, (x, y, cw, ch), crop_h, crop_w = 1.0, (0, 0, w0, h0), h0, w0
    else:
        f = p.short_edge * rng.uniform(*p.scale) / min(w0, h0)
        sw, sh = max(1, round(w0 * f)), max(1, round(h0 * f))
        crop_h, crop_w = p.crop
        cw, ch = min(crop_w, sw), min(crop_h, sh)
        x, y = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
    # crop window in original pixels (clamped: rounding the scaled size may overshoot by a fraction)
    src = (x / f, y / f, min(w0, (x + cw) / f), min(h0, (y + ch) / f))

    if p is not None and p.draft and ext in ("jpg", "jpeg") and f <= 0.5:
        im.draft("RGB", (math.ceil(w0 * f), math.ceil(h0 * f)))  # DCT-domain downscale: far less work
    sx, sy = im.size[0] / w0, im.size[1] / h0
    try:
        image = im.convert("RGB").resize(
            (cw, ch), Image.BILINEAR,
            box=(src[0] * sx, src[1] * sy, min(im.size[0], src[2] * sx), min(im.size[1], src[3] * sy)),
        )
    except Exception as e:  # PIL decodes lazily: a corrupt file fails here, with as many types
        raise SampleError(key, f"image cannot be decoded: {e}") from e

    do_flip = bool(p is not None and p.flip and rng.random() < 0.5)
    if p is not None and p.jitter > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhancer(image).enhance(rng.uniform(1 - p.jitter, 1 + p.jitter))
    if p is not None and rng.random() < p.blur_prob:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*p.blur_radius)))
    if p is not None and p.corruption_prob > 0 and p.corruption_kinds and rng.random() < p.corruption_prob:
        from trainer.data.corrupt import corrupt

        kind = p.corruption_kinds[int(rng.integers(len(p.corruption_kinds)))]
        image = corrupt(image, kind, int(rng.integers(p.corruption_severity[0], p.corruption_severity[1] + 1)), rng)

    img = np.zeros((crop_h, crop_w, 3), dtype=np.uint8)  # pad small images with black / ignore
    img[:ch, :cw] = np.asarray(image)
    target = np.full((crop_h, crop_w), -1, dtype=np.int64)
    if sample.label_png is not None:
        target[:ch, :cw] = _label_array(key, sample.label_png, sample.record.ignore_index, src, (cw, ch))

    boxes, classes, box_targets = _boxes(sample, f, x, y, cw, ch, p.box_min_visible if p is not None else 0.0)
    if do_flip:
        img, target = img[:, ::-1], target[:, ::-1]
        if len(boxes):
            boxes[:, [0, 2]] = crop_w - boxes[:, [2, 0]]
    return {
        "key": key, "dataset": sample.record.dataset, "supervision": sample.record.supervision,
        "image": np.ascontiguousarray(img), "target": np.ascontiguousarray(target),
        "boxes": boxes, "box_classes": classes, "box_targets": box_targets,
    }


def _boxes(sample: ShardSample, f, x, y, cw, ch, min_visible: float = 0.5):
    """Boxes scaled and shifted into the crop, clipped. A box stays only when at least `min_visible`
    of its area is inside the crop: its L_WD target describes the whole box, so a box mostly cut
    away would teach the crop's few pixels what the rest of the object looks like."""
    arr = np.asarray(sample.record.boxes or [], dtype=np.float64).reshape(-1, 5)
    targets = sample.box_embeddings
    xy = arr[:, :4] * f - np.array([x, y, x, y])
    full = (xy[:, 2] - xy[:, 0]).clip(min=0) * (xy[:, 3] - xy[:, 1]).clip(min=0)
    xy[:, [0, 2]] = xy[:, [0, 2]].clip(0, cw)
    xy[:, [1, 3]] = xy[:, [1, 3]].clip(0, ch)
    visible = (xy[:, 2] - xy[:, 0]) * (xy[:, 3] - xy[:, 1])
    keep = ((xy[:, 2] - xy[:, 0]) >= 1) & ((xy[:, 3] - xy[:, 1]) >= 1)
    keep &= visible >= min_visible * np.maximum(full, 1e-9)
    return (
        xy[keep].astype(np.float32),
        arr[keep, 4].astype(np.int64),
        None if targets is None else targets[keep],
    )
