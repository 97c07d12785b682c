"""What every format reader provides: plan the work once, then read one item into a Sample.

A reader is two pure functions (the module-level `plan` and `read` of a format's module, wrapped by
its entry in the format registry, pipeline/convert/readers/__init__.py). `plan` runs once in the driver and lists the work (it may read a
large index such as a COCO JSON, once); each WorkItem it yields is small and picklable, so a Ray
task can carry a shard's worth of them. `read` turns one WorkItem into a Sample, or raises
BadSample naming the file and the reason, which sends that sample to the quarantine report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.errors import SsiwError
from pipeline.taxonomy.schema import DatasetTaxonomy


class BadSample(SsiwError):
    """One input sample cannot be converted; the job quarantines it and goes on (or stops with --strict)."""

    def __init__(self, path: str | Path, reason: str, unknown: list | tuple = (),
                 unknown_pixels: list[int] | None = None, pixels: int = 0):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        # Raw values the taxonomy does not know (MIDs, category ids, label values), kept apart from
        # the prose so the end of a convert can tabulate them: value -> samples affected.
        self.unknown = [v.item() if hasattr(v, "item") else v for v in unknown]
        # For label maps: pixels of each unknown value, and of the whole label (for pixel shares).
        self.unknown_pixels = list(unknown_pixels) if unknown_pixels is not None else None
        self.pixels = int(pixels)

    def __reduce__(self):  # picklable across Ray workers (Exception's default passes only args)
        return (BadSample, (self.path, self.reason, self.unknown, self.unknown_pixels, self.pixels))


@dataclass(frozen=True)
class WorkItem:
    """One image's worth of work, as planned. Small and picklable."""

    key: str  # unique within (dataset, split); letters, digits, '-' and '_' only (a tar member stem)
    image: str  # absolute path of the image file
    annotation: str | None = None  # absolute path of the label file, when there is one
    extra: dict[str, Any] = field(default_factory=dict)  # the format's own per-image data (boxes, masks, ...)
    sources: dict[str, str] = field(default_factory=dict)  # role -> file relative to the root, for the record
    index: str | None = None  # the index file (JSON, CSV, id list) the item was planned from
    # A problem plan() found in the index for this image alone: reading the item raises it as a
    # BadSample naming `index` (see the format registry), so only that sample is lost.
    error: str | None = None


@dataclass
class Sample:
    """One converted sample, ready for the shard writer."""

    key: str
    image_bytes: bytes  # the original file's bytes, never re-encoded
    image_ext: str  # "jpg" or "png", from the bytes' real format
    width: int
    height: int
    label: np.ndarray | None  # HxW, the taxonomy's label dtype, contiguous index or ignore index
    boxes: list[list[int]] | None = None  # [x0, y0, x1, y1, class_index] for box supervision
    sources: dict[str, str] = field(default_factory=dict)  # role -> source file name, for the record
    # Pixels per label value (index = value), when the reader counted them while mapping; the
    # writer then uses these instead of counting the label again.
    label_counts: np.ndarray | None = None
    pseudo_label: Any = None  # a shard_format.PseudoLabelSource when a model made the label
    # What reading did to this sample that the convert summary reports, summed over the split
    # (boxes clipped or dropped by reason, pixels snapped to a palette colour, ...): description -> count.
    notes: dict[str, int] = field(default_factory=dict)


class Reader(Protocol):
    def plan(self, tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]: ...

    def read(self, tax: DatasetTaxonomy, item: WorkItem) -> Sample: ...


@dataclass(frozen=True)
class FunctionReader:
    """A reader made of two module-level functions (picklable for Ray); the tests' stand-in readers."""

    plan: Callable[[DatasetTaxonomy, Path, str], Iterator[WorkItem]]
    read: Callable[[DatasetTaxonomy, WorkItem], Sample]
