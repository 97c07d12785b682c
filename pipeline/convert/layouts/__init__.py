"""The formats' own files, written where a release puts them: the other half of the readers.

Each registry entry (`Format.layout`) names its writer here: paired.py, coco.py or openimages.py. A
writer takes the taxonomy, a root, a split and the content (raw ids, segments, boxes, encoded images)
and returns key -> image file. The tests' fixtures, the demo corpus and the benchmarks' inputs all
write through them, so none can drift from what the readers expect."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class Files:
    """Puts a writer's files. Content given again (the same object) becomes a hard link to its first
    file: the benchmarks repeat a few samples thousands of times without encoding or storing them again."""

    def __init__(self) -> None:
        self._first: dict[int, tuple[Path, Any]] = {}  # id(content) -> (its file, the content, kept alive)

    def put(self, path: Path, content: Any, encode: Callable[[Any], bytes] | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if id(content) in self._first:
            os.link(self._first[id(content)][0], path)
        else:
            path.write_bytes(encode(content) if encode else content)
            self._first[id(content)] = (path, content)
        return path


def png(array: np.ndarray, mode: str | None = None, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of an array as PIL maps it (uint8 2-D: L, H x W x 3: RGB), converted to `mode`, or
    mode P with a 256 x 3 palette."""
    from PIL import Image

    im = Image.fromarray(array)
    if mode:
        im = im.convert(mode)
    if palette is not None:
        im.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def index_png(raw: np.ndarray) -> bytes:
    """A label PNG whose pixel is the raw id: 8-bit L, or 16-bit when an id exceeds 255."""
    return png(raw.astype(np.uint16 if raw.max() > 255 else np.uint8))
