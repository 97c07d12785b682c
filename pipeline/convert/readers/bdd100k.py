"""BDD100K semantic segmentation: labels/sem_seg/masks/<split>/<name>.png, an L PNG of train ids
(0..18, 255 = unlabelled), same stem as images/10k/<split>/<name>.jpg."""

from __future__ import annotations

from pipeline.convert.readers.base import FunctionReader, Sample, WorkItem
from pipeline.convert.readers.dense import plan_pairs, read_index_png
from pipeline.convert.readers.pairing import PAIRING_OPTIONS
from pipeline.taxonomy.schema import DatasetTaxonomy


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    return read_index_png(tax, item, ("L", "P"))


READER = FunctionReader(plan=plan_pairs, read=read, options=PAIRING_OPTIONS)
