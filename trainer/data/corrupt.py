"""Image corruptions for training augmentation (the paper also degrades images: noise, blur,
compression and the like). Each kind takes a severity 1..5 and an rng, and returns a new PIL image
of the same size and mode (RGB)."""

from __future__ import annotations

import io

import numpy as np

# Per severity 1..5; chosen so that 1 is barely visible and 5 is still recognisable.
_NOISE_SIGMA = (4.0, 8.0, 12.0, 18.0, 26.0)  # gray levels
_BLUR_RADIUS = (0.6, 1.0, 1.5, 2.2, 3.0)  # pixels
_JPEG_QUALITY = (60, 40, 25, 15, 8)
_PIXELATE_FACTOR = (0.8, 0.65, 0.5, 0.38, 0.28)  # downscale factor before scaling back up
_MOTION_LENGTH = (3, 5, 7, 9, 13)  # pixels of horizontal smear

KINDS = ("gaussian_noise", "gaussian_blur", "jpeg", "pixelate", "motion_blur")


def corrupt(image, kind: str, severity: int, rng: np.random.Generator):
    from PIL import Image, ImageFilter

    if not 1 <= severity <= 5:
        raise ValueError(f"corruption severity must be 1..5, got {severity}")
    i = severity - 1
    if kind == "gaussian_noise":
        arr = np.asarray(image, dtype=np.float32)
        arr = arr + rng.normal(0.0, _NOISE_SIGMA[i], arr.shape).astype(np.float32)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if kind == "gaussian_blur":
        return image.filter(ImageFilter.GaussianBlur(_BLUR_RADIUS[i]))
    if kind == "jpeg":
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=_JPEG_QUALITY[i])
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "pixelate":
        w, h = image.size
        small = image.resize((max(1, round(w * _PIXELATE_FACTOR[i])), max(1, round(h * _PIXELATE_FACTOR[i]))),
                             Image.BOX)
        return small.resize((w, h), Image.NEAREST)
    if kind == "motion_blur":
        n = _MOTION_LENGTH[i]
        arr = np.asarray(image, dtype=np.float32)
        padded = np.pad(arr, ((0, 0), (n // 2, n - 1 - n // 2), (0, 0)), mode="edge")
        out = sum(padded[:, k : k + arr.shape[1]] for k in range(n)) / n  # box filter along x
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(KINDS)}")
