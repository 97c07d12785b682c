"""The format registry: one entry per annotation format a taxonomy YAML may name (the plain data lives in
pipeline/taxonomy/formats.py; here each entry gets its reader).

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
from pipeline.taxonomy.formats import FORMAT_INFO, PAIRING_OPTIONS, FormatInfo

if TYPE_CHECKING:
    from pipeline.convert.readers.base import Sample, WorkItem
    from pipeline.taxonomy.schema import DatasetTaxonomy

@dataclass(frozen=True)
class Format(FormatInfo):
    """A registry entry (pipeline.taxonomy.formats) with its reader and layout writer attached."""

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

    def locate(self, path: str, shared: dict) -> str | None:
        """Where the reader finds a planned file that is not at its planned path: the file it would read,
        else where the release's own layout puts it; None when the reader looks nowhere else."""
        find = getattr(self._reader(), "locate", None)
        return find(path, shared) if find else None

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


FORMATS: dict[str, Format] = {name: Format(**vars(info)) for name, info in FORMAT_INFO.items()}


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
