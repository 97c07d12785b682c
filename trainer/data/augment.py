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
from trainer.config import Corruption, config_default


def _default(field: str):
    """The training config's default: AugmentParams built in code (tests, benchmarks) matches a YAML run."""
    if field.startswith("corruption_"):
        return config_default(field.removeprefix("corruption_"), Corruption)
    return config_default(field)


@dataclass(frozen=True)
class AugmentParams:
    short_edge: int = _default("short_edge")
    scale: tuple[float, float] = _default("scale")
    crop: tuple[int, int] = _default("crop")  # height, width
    flip: bool = _default("flip")
    jitter: float = _default("jitter")  # brightness / contrast / saturation factors drawn from [1-j, 1+j]
    blur_prob: float = _default("blur_prob")
    blur_radius: tuple[float, float] = (0.1, 2.0)
    draft: bool = True
    box_min_visible: float = _default("box_min_visible")  # keep a box only when this share of it is in the crop
    corruption_prob: float = _default("corruption_prob")  # chance of one image corruption (trainer/data/corrupt.py)
    corruption_kinds: tuple[str, ...] = tuple(_default("corruption_kinds"))
    corruption_severity: tuple[int, int] = _default("corruption_severity")
    keep_size: bool = False  # no resize and no crop: the whole image at its own size (see none())

    @classmethod
    def none(cls) -> AugmentParams:
        """No augmentation (evaluation): the image as it is, every box kept, nothing random applied."""
        return cls(scale=(1.0, 1.0), flip=False, jitter=0.0, blur_prob=0.0, draft=False, box_min_visible=0.0,
                   corruption_prob=0.0, keep_size=True)

    @classmethod
    def from_config(cls, cfg) -> AugmentParams:
        """A TrainConfig's augmentation fields."""
        return cls(short_edge=cfg.short_edge, scale=tuple(cfg.scale), crop=tuple(cfg.crop), flip=cfg.flip,
                   jitter=cfg.jitter, blur_prob=cfg.blur_prob, box_min_visible=cfg.box_min_visible,
                   corruption_prob=cfg.corruption.prob, corruption_kinds=tuple(cfg.corruption.kinds),
                   corruption_severity=tuple(cfg.corruption.severity))


@dataclass
class DecodedSample:
    """One training sample, decoded and augmented (or a blank standing in for an unreadable one)."""

    key: str
    dataset: str  # as the record says
    supervision: str  # dense / coarse / box (a Supervision)
    image: np.ndarray  # uint8 H x W x 3
    target: np.ndarray  # int64 H x W, class index or -1 (ignore)
    boxes: np.ndarray  # float32 N x 4, x0 y0 x1 y1 in the crop
    box_classes: np.ndarray  # int64 N
    box_targets: np.ndarray | None  # N x D image embeddings of the boxes (KEY.boxemb.npy), if the shard has them
    source: str = ""  # the training dataset whose shards it came from (set by the stream)

    @classmethod
    def blank(cls, key: str, source: str, crop: tuple[int, int]) -> DecodedSample:
        """Stands in for a sample that could not be decoded: black, every pixel ignored, no boxes."""
        h, w = crop
        return cls(key, source, "dense", np.zeros((h, w, 3), np.uint8), np.full((h, w), -1, np.int64),
                   np.zeros((0, 4), np.float32), np.zeros(0, np.int64), None, source)


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


def decode_sample(raw: dict, rng: np.random.Generator, p: AugmentParams) -> DecodedSample:
    """Raw webdataset sample -> a DecodedSample (image, target with -1 ignore, boxes in the crop)."""
    from PIL import Image, ImageEnhance, ImageFilter

    sample = parse_sample(raw)
    key, ext = sample.key, sample.image_ext
    try:
        im = Image.open(io.BytesIO(sample.image))
        w0, h0 = im.size
    except Exception as e:  # PIL raises several types for corrupt files
        raise SampleError(key, f"image cannot be decoded: {e}") from e

    if p.keep_size:
        f, (x, y, cw, ch), (crop_h, crop_w) = 1.0, (0, 0, w0, h0), (h0, w0)
    else:
        f = p.short_edge * rng.uniform(*p.scale) / min(w0, h0)
        sw, sh = max(1, round(w0 * f)), max(1, round(h0 * f))
        crop_h, crop_w = p.crop
        cw, ch = min(crop_w, sw), min(crop_h, sh)
        x, y = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
    # crop window in original pixels (clamped: rounding the scaled size may overshoot by a fraction)
    src = (x / f, y / f, min(w0, (x + cw) / f), min(h0, (y + ch) / f))

    if p.draft and ext in ("jpg", "jpeg") and f <= 0.5:
        im.draft("RGB", (math.ceil(w0 * f), math.ceil(h0 * f)))  # DCT-domain downscale: far less work
    sx, sy = im.size[0] / w0, im.size[1] / h0
    try:
        image = im.convert("RGB").resize(
            (cw, ch), Image.BILINEAR,
            box=(src[0] * sx, src[1] * sy, min(im.size[0], src[2] * sx), min(im.size[1], src[3] * sy)),
        )
    except Exception as e:  # PIL decodes lazily: a corrupt file fails here, with as many types
        raise SampleError(key, f"image cannot be decoded: {e}") from e

    do_flip = bool(p.flip and rng.random() < 0.5)
    if p.jitter > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhancer(image).enhance(rng.uniform(1 - p.jitter, 1 + p.jitter))
    if rng.random() < p.blur_prob:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*p.blur_radius)))
    if p.corruption_prob > 0 and p.corruption_kinds and rng.random() < p.corruption_prob:
        from trainer.data.corrupt import corrupt

        kind = p.corruption_kinds[int(rng.integers(len(p.corruption_kinds)))]
        image = corrupt(image, kind, int(rng.integers(p.corruption_severity[0], p.corruption_severity[1] + 1)), rng)

    img = np.zeros((crop_h, crop_w, 3), dtype=np.uint8)  # pad small images with black / ignore
    img[:ch, :cw] = np.asarray(image)
    target = np.full((crop_h, crop_w), -1, dtype=np.int64)
    if sample.label_png is not None:
        target[:ch, :cw] = _label_array(key, sample.label_png, sample.record.ignore_index, src, (cw, ch))

    boxes, classes, box_targets = _boxes(sample, f, x, y, cw, ch, p.box_min_visible)
    if do_flip:
        img, target = img[:, ::-1], target[:, ::-1]
        if len(boxes):
            boxes[:, [0, 2]] = crop_w - boxes[:, [2, 0]]
    return DecodedSample(key, sample.record.dataset, sample.record.supervision, np.ascontiguousarray(img),
                         np.ascontiguousarray(target), boxes, classes, box_targets)


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
