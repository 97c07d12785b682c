"""The format registry: one entry per annotation format a taxonomy YAML may name.

An entry says what the format supports (supervision kinds, the format_options it reads), where
its reader lives (pipeline/convert/readers/<module>.py: module-level `plan` and `read`) and which
layout writer puts its files on disk the way its release does (pipeline/convert/layouts/, for the
tests, the demo and the benchmarks; `write_layout`). Everything
here is plain data, importable without numpy or PIL, so
`ssiw taxonomy validate` checks formats from this same list and stays fast; a reader module loads on
first use.

An entry is itself the reader the converter runs (picklable: it holds only names): `plan` refuses
format_options the format does not read, and `read` raises a planned error (WorkItem.error) as a
BadSample, here once for every format, so no reader repeats either check.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import BadInput, UnknownName

if TYPE_CHECKING:
    from pipeline.convert.readers.base import Sample, WorkItem
    from pipeline.taxonomy.schema import DatasetTaxonomy

# Options of the readers that pair each label file with its image (pipeline/convert/readers/pairing.py).
PAIRING_OPTIONS = frozenset({"annotation_suffix", "image_suffix", "pair_by", "scene_list"})
DENSE = frozenset({"dense", "coarse"})
PAIRED, COCO = "paired:write_pairs", "coco:write_coco"  # layout writers several formats share


@dataclass(frozen=True)
class Format:
    name: str
    about: str
    supervision: frozenset[str]  # the taxonomy supervision kinds the reader can produce
    options: frozenset[str] = frozenset()  # the format_options keys the reader reads
    module: str = ""  # pipeline.convert.readers.<module>; defaults to the name
    layout: str = ""  # its layout writer: pipeline.convert.layouts.<module>:<function>

    def __reduce__(self):  # a Ray worker gets the registry's own entry
        return (get_reader, (self.name,))

    def _reader(self):
        return importlib.import_module(f"pipeline.convert.readers.{self.module or self.name}")

    def layout_writer(self):
        module, function = self.layout.split(":")
        return getattr(importlib.import_module(f"pipeline.convert.layouts.{module}"), function)

    def write_layout(self, tax: DatasetTaxonomy, root: Path, split: str, content: list, **index) -> dict:
        """Write `content` (the writer's own sample type) in the split's layout; returns key -> image file."""
        assert tax.format == self.name, f"{tax.name} is {tax.format!r}, not {self.name!r}"
        return self.layout_writer()(tax, Path(root), split, content, **index)

    def plan(self, tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
        # An option the reader does not read would be silently ignored: refuse it instead.
        unknown = sorted(set(tax.format_options) - self.options)
        if unknown:
            raise BadInput(
                f"{tax.name}: format_options {unknown} mean nothing to the {self.name!r} reader "
                f"(it reads: {', '.join(sorted(self.options)) or 'none'})"
            )
        return self._reader().plan(tax, Path(root), split)

    def read(self, tax: DatasetTaxonomy, item: WorkItem) -> Sample:
        if item.error:
            from pipeline.convert.readers.base import BadSample

            raise BadSample(item.index or item.image, item.error, unknown=item.extra.get("unknown", ()))
        return self._reader().read(tax, item)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("ade20k", "ADE20K challenge PNGs (mode L, 0 = other) or full-ADE20K _seg.png (class = R/10*256+G)",
               DENSE, PAIRING_OPTIONS | {"variant", "map_from_ade"}, layout=PAIRED),
        Format("coco_panoptic", "COCO panoptic JSON + PNGs (segment id = R + 256*G + 256^2*B)", DENSE, layout=COCO),
        Format("mapillary", "Mapillary Vistas v1.2 / v2.0 palette PNGs (palette index is the class)",
               DENSE, PAIRING_OPTIONS | {"version"}, layout=PAIRED),
        Format("cityscapes", "Cityscapes *_gtFine_labelIds.png", DENSE, PAIRING_OPTIONS, "dense", PAIRED),
        Format("bdd100k", "BDD100K semantic masks (train ids in an L PNG)", DENSE, PAIRING_OPTIONS, "dense", PAIRED),
        Format("idd", "IDD level3 id PNGs, or _polygons.json rasterised with PIL",
               DENSE, PAIRING_OPTIONS | {"polygon_suffix", "polygon_label_to_level3"}, layout=PAIRED),
        Format("sunrgbd", "SUN RGB-D 37-class label PNGs as MSeg prepares them (semseg-label37/, 0..36, 255)",
               DENSE, PAIRING_OPTIONS, "dense", PAIRED),
        Format("openimages_v6", "OpenImages V6 segmentation CSV + per-object binary mask PNGs (noisy)", DENSE,
               layout="openimages:write_openimages"),
        Format("objects365", "Objects365 COCO-format JSON, boxes only", frozenset({"box"}), layout=COCO),
        Format("png_folder", "generic index-valued L/P PNGs, or colour-coded RGB with a colour per class",
               DENSE, PAIRING_OPTIONS | {"mode", "ignore_colors"}, layout=PAIRED),
        Format("coco_instances", "generic COCO instances JSON (RLE or polygons via pycocotools)",
               DENSE | {"box"}, layout=COCO),
        Format("youtube_vis", "YouTube-VIS instances JSON (per-frame RLE per object track) + per-video frame folders",
               DENSE, frozenset({"frames"}), layout="youtube_vis:write_youtube_vis"),
    ]
}


def get_reader(name: str) -> Format:
    if name not in FORMATS:
        raise UnknownName(f"no reader for format {name!r}; known: {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


def __getattr__(name: str):
    # The reader contract's types, without importing numpy when only the registry is wanted.
    if name in ("BadSample", "FunctionReader", "Sample", "WorkItem"):
        from pipeline.convert.readers import base

        return getattr(base, name)
    raise AttributeError(name)


__all__ = ["FORMATS", "PAIRING_OPTIONS", "Format", "get_reader"]
