"""`ssiw segment`: label PNGs and colour overlays with a legend for a list of images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import BadInput
from pipeline.palette import palette
from pipeline.safe_write import atomic_path
from pipeline.shard_format import label_dtype


def _save_png(image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def overlay_with_legend(image: np.ndarray, labels: np.ndarray, names: list[str], alpha: float = 0.5):
    """The image blended with class colours, and a legend of the classes present beside it."""
    from PIL import Image, ImageDraw

    colours = palette(len(names))
    known = labels < len(names)  # the rest is the ignore value of a confidence cut: left uncoloured
    blend = np.where(known[..., None], image * (1 - alpha) + colours[np.where(known, labels, 0)] * alpha,
                     image).astype(np.uint8)
    present = [int(c) for c in np.unique(labels[known])]
    row = 18
    legend_w = 12 + max((len(names[c]) for c in present), default=4) * 7 + 30
    canvas = Image.new("RGB", (blend.shape[1] + legend_w, max(blend.shape[0], row * len(present) + 10)), "white")
    canvas.paste(Image.fromarray(blend), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = blend.shape[1] + 8
    for i, c in enumerate(present):
        y = 6 + i * row
        draw.rectangle([x0, y, x0 + 12, y + 12], fill=tuple(int(v) for v in colours[c]), outline="black")
        draw.text((x0 + 18, y), names[c], fill="black")
    return canvas


def segment_images(predictor, images: list[Path], vectors: np.ndarray, names: list[str], out_dir: Path,
                   scales: list[int], sliding: bool = False, cut: float | None = None) -> list[dict]:
    """Label PNG values are columns of `vectors` (rows of the label space), or the ignore value
    (pipeline.shard_format.ignore_value: 255, or 65535 above 254 labels) where the top probability is not
    above `cut`."""
    from PIL import Image

    from trainer.predict.run_space import label_image

    out_dir.mkdir(parents=True, exist_ok=True)
    window = predictor.settings.crop if sliding else None
    written = []
    for path in images:
        try:
            image = np.asarray(Image.open(path).convert("RGB"))
        except Exception as e:  # PIL raises many types for a missing, foreign or corrupt file
            raise BadInput(f"{path}: cannot read image: {e}") from e
        if len(scales) == 1:
            labels = label_image(predictor, image, vectors, scales[0], window, cut)
        else:
            labels = predictor.predict(image, vectors, scales, window)
        dtype = label_dtype(len(names))
        label_path = out_dir / f"{Path(path).stem}.label.png"
        overlay_path = out_dir / f"{Path(path).stem}.overlay.png"
        _save_png(Image.fromarray(labels.astype(dtype)), label_path)
        _save_png(overlay_with_legend(image, labels, names), overlay_path)
        present = [names[c] if c < len(names) else "(below confidence)" for c in np.unique(labels)]
        written.append({"image": str(path), "label": str(label_path), "overlay": str(overlay_path), "classes": present})
    return written
