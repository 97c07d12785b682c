"""Class colours shared by every picture the project draws (segment overlays, the shard preview, the demo
report): one colour per class index, stable for a given class order."""

from __future__ import annotations

import colorsys

import numpy as np


def palette(k: int) -> np.ndarray:
    """k distinct colours (golden-ratio hues), stable for a given class order."""
    cols = [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65 + 0.35 * (i % 2), 0.95) for i in range(k)]
    return (np.array(cols) * 255).astype(np.uint8).reshape(k, 3)
