"""The common case: one label PNG per image whose pixel values are the raw ids (L, P or 16-bit).

This module is also the whole reader of the formats that are nothing more (8-bit L or P PNGs):
  cityscapes: *_gtFine_labelIds.png with the 34 label ids (also KITTI / WildDash in that format); pair
      with annotation_suffix `_gtFine_labelIds`, image_suffix `_leftImg8bit`; ids that are not
      training classes sit in the taxonomy's ignore_values.
  bdd100k: labels/sem_seg/masks/<split>/<name>.png, train ids 0..18 (255 = unlabelled), same stem as
      images/10k/<split>/<name>.jpg.
  sunrgbd: the MSeg layout, image/<split>/img-NNNNNN.jpg with label37/<split>/NNNNNNNN.png (already
      shifted to 0..36, 255 = unlabelled), paired by number (format_options pair_by: number)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.convert.readers.base import Sample, WorkItem
from pipeline.convert.readers.common import check_size, load_image, make_sample, map_label_image, open_label
from pipeline.convert.readers.pairing import pair_split
from pipeline.taxonomy.schema import DatasetTaxonomy

# P: the palette index is the raw id; the palette's colours are never looked at.
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I")


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    return iter(pair_split(tax, Path(root), split))


def read_index_png(tax: DatasetTaxonomy, item: WorkItem, modes: tuple[str, ...] = INDEX_MODES) -> Sample:
    image = load_image(item.image)
    assert item.annotation is not None
    label_im = open_label(item.annotation, modes)
    check_size(item.annotation, label_im.size, image.width, image.height)
    label, counts = map_label_image(tax, label_im, item.annotation)
    return make_sample(item, image, label, label_counts=counts)


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    return read_index_png(tax, item, ("L", "P"))
