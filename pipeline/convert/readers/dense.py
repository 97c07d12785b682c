"""The common case: one label PNG per image whose pixel values are the raw ids (L, P or 16-bit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.convert.readers.base import Sample, WorkItem
from pipeline.convert.readers.common import (
    check_options,
    check_size,
    load_image,
    make_sample,
    map_label_image,
    open_label,
    raise_planned_error,
)
from pipeline.convert.readers.pairing import PAIRING_OPTIONS, pair_split
from pipeline.taxonomy.schema import DatasetTaxonomy

# P: the palette index is the raw id; the palette's colours are never looked at.
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I")


def plan_pairs(
    tax: DatasetTaxonomy, root: Path, split: str, options: frozenset[str] = PAIRING_OPTIONS
) -> Iterator[WorkItem]:
    check_options(tax, options)
    return iter(pair_split(tax, Path(root), split))


def read_index_png(tax: DatasetTaxonomy, item: WorkItem, modes: tuple[str, ...] = INDEX_MODES) -> Sample:
    raise_planned_error(item)
    image = load_image(item.image)
    assert item.annotation is not None
    label_im = open_label(item.annotation, modes)
    check_size(item.annotation, label_im.size, image[2], image[3])
    label, counts = map_label_image(tax, label_im, item.annotation)
    return make_sample(item, image, label, label_counts=counts)
