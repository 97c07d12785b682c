"""Cityscapes (and KITTI / WildDash in its format): *_gtFine_labelIds.png, an L PNG of the 34 label ids.

Pair with annotation_suffix `_gtFine_labelIds`, image_suffix `_leftImg8bit`; ids that are not
training classes sit in the taxonomy's ignore_values."""

from __future__ import annotations

from pipeline.convert.readers.base import FunctionReader, Sample, WorkItem
from pipeline.convert.readers.dense import plan_pairs, read_index_png
from pipeline.convert.readers.pairing import PAIRING_OPTIONS
from pipeline.taxonomy.schema import DatasetTaxonomy


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    return read_index_png(tax, item, ("L", "P"))


READER = FunctionReader(plan=plan_pairs, read=read, options=PAIRING_OPTIONS)
