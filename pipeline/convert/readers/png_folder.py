"""Generic label PNGs beside images, so a new dataset in this common layout needs only a YAML.

format_options mode:
  index (default): L, P (palette index) or 16-bit PNGs whose value is the raw id.
  color: RGB PNGs where each class has `color: [r, g, b]` in the YAML; colours listed in
      format_options `ignore_colors` become ignore. With `color_tolerance` d > 0, a pixel of another
      colour within RGB distance d of its nearest listed colour is snapped to it (JPEG-damaged masks;
      DeepGlobe's release says to binarize at 128), counted in the summary. Any other colour is a
      BadSample naming every such colour with its pixel count.
Pairing options, scene_list and a split's `index` (a plain-text id list) as in pairing.py."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipeline.convert.readers import dense
from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.common import check_size, load_image, make_sample, open_label
from pipeline.errors import BadInput
from pipeline.taxonomy.schema import DatasetTaxonomy


def pack(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> one int32 per pixel, 0xRRGGBB."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def color_table(tax: DatasetTaxonomy) -> dict[int, int]:
    """Packed colour -> class index or ignore index."""
    return _color_table(tax.name, tuple(map(tuple, tax.format_options.get("ignore_colors", []) or [])),
                        tuple((c.name, c.color and tuple(c.color), c.ignore) for c in tax.classes),
                        tax.ignore_index)


@lru_cache(maxsize=16)
def _color_table(name: str, ignore_colors: tuple, classes: tuple, ignore_index: int) -> dict[int, int]:
    table: dict[int, int] = {}
    for r, g, b in ignore_colors:
        table[(r << 16) | (g << 8) | b] = ignore_index
    for index, (class_name, color, ignore) in enumerate(classes):
        if color is None:
            raise BadInput(f"{name}: mode color needs a color for class {class_name!r}")
        r, g, b = color
        packed = (r << 16) | (g << 8) | b
        if packed in table and table[packed] != index:
            raise BadInput(f"{name}: colour {list(color)} used twice")
        table[packed] = ignore_index if ignore else index
    return table


SNAPPED = "pixels snapped to the nearest palette colour (color_tolerance)"


def unpack(packed: int) -> list[int]:
    return [packed >> 16, (packed >> 8) & 255, packed & 255]


def snap(colors: np.ndarray, table: dict[int, int], tolerance: float) -> dict[int, int]:
    """Packed colours not in the table -> the packed palette colour nearest each, for those within
    `tolerance` (Euclidean RGB distance); the others stay out."""
    palette = np.array(sorted(table), dtype=np.int64)
    if tolerance <= 0 or not palette.size or not colors.size:
        return {}
    rgb = np.array([unpack(int(c)) for c in colors], dtype=np.float64)
    ref = np.array([unpack(int(c)) for c in palette], dtype=np.float64)
    dist = np.sqrt(((rgb[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2))
    nearest = dist.argmin(axis=1)
    near = dist[np.arange(len(colors)), nearest] <= tolerance
    return {int(c): int(palette[n]) for c, n, ok in zip(colors, nearest, near) if ok}


def read_color(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(item.image)
    assert item.annotation is not None
    im = open_label(item.annotation, ("RGB", "RGBA", "P"))
    check_size(item.annotation, im.size, image.width, image.height)
    if im.mode != "RGB":
        im = im.convert("RGB")
    colors, inverse, pixels = np.unique(pack(np.asarray(im)).reshape(-1), return_inverse=True, return_counts=True)
    table = color_table(tax)
    off = np.array([c not in table for c in colors.tolist()], dtype=bool)
    snapped = snap(colors[off], table, float(tax.format_options.get("color_tolerance", 0) or 0))
    unknown = [i for i in np.flatnonzero(off) if int(colors[i]) not in snapped]
    if unknown:
        shown = [unpack(int(colors[i])) for i in unknown]
        more = f" (and {len(shown) - 10} more)" if len(shown) > 10 else ""
        raise BadSample(item.annotation, f"{len(shown)} colour(s) not in taxonomy {tax.name!r}: {shown[:10]}{more}",
                        unknown=[str(c) for c in shown], unknown_pixels=[int(pixels[i]) for i in unknown],
                        pixels=int(pixels.sum()))
    targets = np.array([table[snapped.get(c, c)] for c in colors.tolist()], dtype=tax.label_dtype)
    label = targets[inverse.reshape(-1)].reshape(im.size[1], im.size[0])
    sample = make_sample(item, image, label)
    moved = int(pixels[off].sum())
    if moved:
        sample.notes[SNAPPED] = moved
    return sample


plan = dense.plan  # label PNGs beside images pair as in every label-PNG format


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    mode = tax.format_options.get("mode", "index")
    if mode == "index":
        return dense.read_index_png(tax, item)
    if mode == "color":
        return read_color(tax, item)
    raise BadInput(f"{tax.name}: png_folder mode must be 'index' or 'color', not {mode!r}")
