"""Mapillary Vistas v1.2 / v2.0: one palette (P) PNG per image whose palette index is the position of
the class in the release's config `labels` list. The index is read directly, never via RGB, so two
classes that share a colour can't be confused."""

from __future__ import annotations

from pipeline.convert.readers.base import FunctionReader, Sample, WorkItem
from pipeline.convert.readers.dense import plan_pairs, read_index_png
from pipeline.taxonomy.schema import DatasetTaxonomy


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    # L is accepted too: some re-packagings store the same indices without a palette.
    return read_index_png(tax, item, ("P", "L"))


READER = FunctionReader(plan=plan_pairs, read=read)
