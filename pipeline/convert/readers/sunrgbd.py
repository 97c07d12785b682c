"""SUN RGB-D, 37 classes, in the MSeg layout: image/<split>/img-NNNNNN.jpg with
label37/<split>/NNNNNNNN.png (an L PNG already shifted to 0..36, 255 = unlabelled). Paired by number (format_options pair_by: number)."""

from __future__ import annotations

from pipeline.convert.readers.base import FunctionReader, Sample, WorkItem
from pipeline.convert.readers.dense import plan_pairs, read_index_png
from pipeline.convert.readers.pairing import PAIRING_OPTIONS
from pipeline.taxonomy.schema import DatasetTaxonomy


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    return read_index_png(tax, item, ("L", "P"))


READER = FunctionReader(plan=plan_pairs, read=read, options=PAIRING_OPTIONS)
