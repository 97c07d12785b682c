"""Mapillary Vistas v1.2 / v2.0: one palette (P) PNG per image whose palette index is the position of
the class in the release's config `labels` list. The index is read directly, never via RGB, so two
classes that share a colour can't be confused.

format_options `version` ("v1.2" / "v2.0"): the release ships both label sets side by side
(<split>/v1.2/labels, <split>/v2.0/labels) and the two number classes differently, so each split's
annotations must read from the folder of that version; plan() refuses a split that doesn't."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.convert.readers import dense
from pipeline.convert.readers.base import Sample, WorkItem
from pipeline.convert.readers.pairing import split_spec
from pipeline.errors import BadInput
from pipeline.taxonomy.schema import DatasetTaxonomy


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    version = tax.format_options.get("version")
    annotations = split_spec(tax, split).annotations or ""
    if version is not None and str(version) not in annotations.split("/"):
        raise BadInput(
            f"{tax.name}: format_options version is {version!r} but split {split!r} reads labels "
            f"from {annotations!r}, not a {version} folder"
        )
    return dense.plan(tax, root, split)


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    # L is accepted too: some re-packagings store the same indices without a palette.
    return dense.read_index_png(tax, item, ("P", "L"))
