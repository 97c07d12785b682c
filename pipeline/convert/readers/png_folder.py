"""Generic label PNGs beside images, so a new dataset in this common layout needs only a YAML.

format_options mode:
  index (default): L, P (palette index) or 16-bit PNGs whose value is the raw id.
  color: RGB PNGs where each class has `color: [r, g, b]` in the YAML; colours listed in
      format_options `ignore_colors` become ignore. Any other colour is a BadSample.
Pairing options, scene_list and a split's `index` (a plain-text id list) as in pairing.py."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pipeline.convert.readers.base import BadSample, FunctionReader, Sample, WorkItem
from pipeline.convert.readers.common import (
    cached,
    check_size,
    load_image,
    make_sample,
    open_label,
    raise_planned_error,
)
from pipeline.convert.readers.dense import plan_pairs, read_index_png
from pipeline.convert.readers.pairing import PAIRING_OPTIONS
from pipeline.taxonomy.schema import DatasetTaxonomy


def pack(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> one int32 per pixel, 0xRRGGBB."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def color_table(tax: DatasetTaxonomy) -> dict[int, int]:
    """Packed colour -> class index or ignore index."""

    def build() -> dict[int, int]:
        table: dict[int, int] = {}
        for r, g, b in tax.format_options.get("ignore_colors", []) or []:
            table[(r << 16) | (g << 8) | b] = tax.ignore_index
        for index, entry in enumerate(tax.classes):
            if entry.color is None:
                raise ValueError(f"{tax.name}: mode color needs a color for class {entry.name!r}")
            r, g, b = entry.color
            packed = (r << 16) | (g << 8) | b
            if packed in table and table[packed] != index:
                raise ValueError(f"{tax.name}: colour {entry.color} used twice")
            table[packed] = tax.ignore_index if entry.ignore else index
        return table

    return cached(tax, "colors", 0, build)


OPTIONS = PAIRING_OPTIONS | {"mode", "ignore_colors"}


def read_color(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    raise_planned_error(item)
    image = load_image(item.image)
    assert item.annotation is not None
    im = open_label(item.annotation, ("RGB", "RGBA", "P"))
    check_size(item.annotation, im.size, image[2], image[3])
    if im.mode != "RGB":
        im = im.convert("RGB")
    colors, inverse = np.unique(pack(np.asarray(im)).reshape(-1), return_inverse=True)
    table = color_table(tax)
    unknown = [c for c in colors.tolist() if c not in table]
    if unknown:
        shown = [[c >> 16, (c >> 8) & 255, c & 255] for c in unknown[:10]]
        raise BadSample(item.annotation, f"colour(s) not in taxonomy {tax.name!r}: {shown}")
    targets = np.array([table[c] for c in colors.tolist()], dtype=tax.label_dtype)
    label = targets[inverse.reshape(-1)].reshape(im.size[1], im.size[0])
    return make_sample(item, image, label)


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    mode = tax.format_options.get("mode", "index")
    if mode == "index":
        return read_index_png(tax, item)
    if mode == "color":
        return read_color(tax, item)
    raise ValueError(f"{tax.name}: png_folder mode must be 'index' or 'color', not {mode!r}")


def plan(tax: DatasetTaxonomy, root, split: str) -> Iterator[WorkItem]:
    return plan_pairs(tax, root, split, OPTIONS)


READER = FunctionReader(plan=plan, read=read, options=OPTIONS)
