"""`ssiw convert --limit N`: pair and read a split's first N samples and say what a full convert would
make of them (pairing, classes, raw values the taxonomy lacks), writing nothing.

It runs the same reader and the same checks as a shard task (readers' read() and encode_sample), in
this process and without Ray, so a wrong pattern, suffix, colour or class list shows in seconds
instead of after an hour of quarantining.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.convert.encode import encode_sample
from pipeline.convert.plan import list_items
from pipeline.convert.readers.base import BadSample, Reader, WorkItem
from pipeline.taxonomy.schema import DatasetTaxonomy


@dataclass(frozen=True)
class PeekedSample:
    key: str
    image: str  # relative to the root where it is under it
    annotation: str
    problem: str | None  # the quarantine reason, or None when the sample converts
    classes: int = 0  # classes present when it converts


@dataclass
class Peek:
    """What the first `limit` samples of one split would become."""

    dataset: str
    split: str
    planned: int  # every item the reader planned for the split
    samples: list[PeekedSample] = field(default_factory=list)
    class_samples: Counter = field(default_factory=Counter)  # class index -> samples that have it
    class_pixels: Counter = field(default_factory=Counter)  # class index -> pixels (box area for box data)
    unknown: Counter = field(default_factory=Counter)  # raw value not in the taxonomy -> samples


def _shown(path: str | None, root: Path) -> str:
    if not path:
        return "-"
    try:
        return os.path.relpath(path, root) if Path(path).is_relative_to(root) else path
    except ValueError:
        return path


def _peek_one(tax: DatasetTaxonomy, reader: Reader, split: str, item: WorkItem, root: Path, peek: Peek) -> None:
    image, annotation = _shown(item.image, root), _shown(item.annotation, root)
    try:
        row = encode_sample(tax, split, reader.read(tax, item)).row
    except BadSample as e:
        peek.unknown.update(str(v) for v in e.unknown)
        problem = e.reason if Path(e.path) in (Path(item.image), Path(item.annotation or item.image)) else str(e)
        peek.samples.append(PeekedSample(item.key, image, annotation, problem))
        return
    peek.class_samples.update(row["classes_present"])
    peek.class_pixels.update(dict(zip(row["classes_present"], row["class_pixels"])))
    peek.samples.append(PeekedSample(item.key, image, annotation, None, len(row["classes_present"])))


def peek_split(tax: DatasetTaxonomy, reader: Reader, root: Path, split: str, limit: int) -> Peek:
    """Plan the split (the same pairing as a convert), then read its first `limit` samples by key."""
    from pipeline.convert.runner import check_inputs

    root = Path(root).resolve()
    check_inputs(tax, root, split)
    items = list_items(reader, tax, root, split)
    peek = Peek(tax.name, split, planned=len(items))
    for item in items[:limit]:
        _peek_one(tax, reader, split, item, root, peek)
    return peek


def render(peek: Peek, tax: DatasetTaxonomy) -> list:
    """Rich renderables: the samples as paired and read, the classes found, the unknown values."""
    from rich.table import Table

    where = f"{peek.dataset}/{peek.split}"
    pairs = Table(title=f"{where}: first {len(peek.samples)} of {peek.planned} planned samples (nothing written)")
    for col in ("key", "image", "label file", "result"):
        pairs.add_column(col, overflow="fold")
    for s in peek.samples:
        pairs.add_row(s.key, s.image, s.annotation, f"ok, {s.classes} classes" if s.problem is None else s.problem)
    out: list = [pairs]
    if peek.class_samples:
        measure = "box area" if tax.supervision.value == "box" else "pixels"
        classes = Table(title=f"{where}: classes in these samples")
        for col in ("index", "class", "samples", f"{measure} %"):
            classes.add_column(col, justify="left" if col == "class" else "right", overflow="fold")
        total = sum(peek.class_pixels.values()) or 1
        for index in sorted(peek.class_samples):
            classes.add_row(str(index), tax.classes[index].name, str(peek.class_samples[index]),
                            f"{100 * peek.class_pixels[index] / total:.1f}")
        out.append(classes)
    if peek.unknown:
        unknown = Table(title=f"{where}: raw values not in the taxonomy")
        unknown.add_column("value", overflow="fold")
        unknown.add_column("samples", justify="right")
        for value, count in peek.unknown.most_common():
            unknown.add_row(value, str(count))
        out.append(unknown)
    bad = sum(s.problem is not None for s in peek.samples)
    out.append(f"{where}: {len(peek.samples) - bad} of {len(peek.samples)} would convert, {bad} would be quarantined")
    return out
