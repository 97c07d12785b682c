"""IDD (India Driving Dataset), level3 ids (26 classes, 255 = ignore).

Images may be PNG (part I, idd-segmentation) or JPEG (part II, idd20kII): the YAML's image pattern
ends in `_leftImg8bit.*`. An image with neither label form is reported naming both patterns.

Where the id PNG (annotation_suffix, e.g. `_gtFine_labellevel3Ids`) exists it is read as an L PNG.
Where it doesn't, the Cityscapes-style `<stem><polygon_suffix>.json` beside it (default suffix
`_gtFine_polygons`) is rasterised with PIL ImageDraw: objects in file order, later ones on top,
each filled with format_options polygon_label_to_level3[label] (a "<name>group" label falls back to
<name>); the background takes the value of 'unlabeled' (255 if absent). An unknown polygon label is
a BadSample, never a guess."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.cocojson import load_json
from pipeline.convert.readers.common import check_size, load_image, make_sample, map_raw
from pipeline.convert.readers.dense import read_index_png
from pipeline.convert.readers.pairing import is_glob, list_files, pair_split, split_spec
from pipeline.taxonomy.schema import DatasetTaxonomy

DEFAULT_POLYGON_SUFFIX = "_gtFine_polygons"


def _polygon_files(tax: DatasetTaxonomy, root: Path, split: str) -> tuple[str, list[Path]]:
    """The polygon JSONs' pattern (the annotations entry with the JSON suffix) and the files."""
    spec = split_spec(tax, split)
    assert spec.annotations is not None
    ann_suffix = str(tax.format_options.get("annotation_suffix", "") or "")
    poly_suffix = str(tax.format_options.get("polygon_suffix", DEFAULT_POLYGON_SUFFIX))
    pattern = spec.annotations
    if is_glob(pattern):
        if ann_suffix and pattern.endswith(f"{ann_suffix}.png"):
            pattern = pattern[: -len(f"{ann_suffix}.png")] + f"{poly_suffix}.json"
        elif pattern.endswith(".png"):
            pattern = pattern[: -len(".png")] + ".json"
    files = list_files(root, pattern, (".json",))
    return pattern, [p for p in files if p.stem.endswith(poly_suffix)]


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    root = Path(root)
    items = {i.key: i for i in pair_split(tax, root, split)}
    poly_suffix = str(tax.format_options.get("polygon_suffix", DEFAULT_POLYGON_SUFFIX))
    pattern, polygons = _polygon_files(tax, root, split)
    for item in pair_split(
        tax, root, split, annotations=polygons, ann_suffix=poly_suffix, ann_pattern=pattern
    ):
        # An id PNG, where there is one, wins; a polygon file stands in where the PNG is missing
        # (with an index, the PNG side then carries a "no label file" error).
        png = items.get(item.key)
        if png is None or (png.error and not item.error):
            items[item.key] = item
        elif _is_unlabelled(png) and _is_unlabelled(item):
            # Neither label form exists: say where both were looked for.
            both = f"{png.error} nor {item.error.removeprefix('missing label file ')}"
            items[item.key] = replace(png, error=both)
    return iter(items[k] for k in sorted(items))


def _is_unlabelled(item: WorkItem) -> bool:
    return (item.error or "").startswith("missing label file")


def _points(polygon: object) -> list[tuple[float, float]]:
    if not isinstance(polygon, list) or len(polygon) < 2:
        raise ValueError("polygon is not a list of at least two [x, y] points")
    points = []
    for p in polygon:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise ValueError(f"polygon point {p!r} is not [x, y]")
        x, y = float(p[0]), float(p[1])
        if not (math.isfinite(x) and math.isfinite(y)):  # NaN would rasterise to a sliver, inf to anything
            raise ValueError(f"polygon point {p!r} is not finite")
        points.append((x, y))
    return points


def rasterise(path: str, table: dict[str, int]) -> np.ndarray:
    """Level3 ids (uint8) painted from a _polygons.json."""
    data = load_json(Path(path))
    try:
        width, height = int(data["imgWidth"]), int(data["imgHeight"])
        objects = data["objects"]
        canvas = Image.new("L", (width, height), int(table.get("unlabeled", 255)))
        draw = ImageDraw.Draw(canvas)
        for n, obj in enumerate(objects):
            if obj.get("deleted"):
                continue
            name = obj["label"]
            if name not in table and name.endswith("group"):
                name = name[: -len("group")]
            if name not in table:
                raise BadSample(
                    path, f"objects[{n}]: polygon label {obj['label']!r} not in polygon_label_to_level3"
                )
            try:
                points = _points(obj["polygon"])
            except ValueError as e:
                raise BadSample(path, f"objects[{n}] ({obj['label']!r}): {e}") from None
            draw.polygon(points, fill=int(table[name]))
    except BadSample:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BadSample(path, f"malformed polygon JSON: {type(e).__name__}: {e}") from None
    return np.asarray(canvas)


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    assert item.annotation is not None
    if not item.annotation.endswith(".json"):
        return read_index_png(tax, item, ("L", "P"))
    image = load_image(item.image)
    table = tax.format_options.get("polygon_label_to_level3")
    if not isinstance(table, dict):
        raise BadSample(item.annotation, f"{tax.name}: format_options lacks polygon_label_to_level3")
    raw = rasterise(item.annotation, table)
    check_size(item.annotation, (raw.shape[1], raw.shape[0]), image.width, image.height)
    return make_sample(item, image, map_raw(tax, raw, item.annotation))

