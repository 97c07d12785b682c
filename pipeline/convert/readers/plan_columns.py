"""A split's planned items as compact columns, for readers whose index lists millions of images.

A list of 1.7M WorkItems, each with a dict of per-box tuples, takes tens of GiB. A reader that plans
a big index returns `ItemColumns` instead: one list per per-image field, big per-box data as slices
of a few numpy arrays, and what every item shares stored once. It is still an iterable of WorkItems
(tests and small splits read it like any plan); the planner writes it to disk without ever making
those WorkItems (pipeline/convert/plan_store.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.convert.readers.base import WorkItem


@dataclass
class ItemColumns:
    keys: list[str]
    images: list[str]  # absolute image paths
    root: str  # the dataset root: sources are image paths relative to it
    annotations: list[str | None] | None = None
    shared: dict[str, Any] = field(default_factory=dict)  # extra entries every item has
    fields: dict[str, list] = field(default_factory=dict)  # per-item extra entries (None: absent)
    # name -> (values, starts, counts): item i's extra[name] is values[starts[i]:starts[i] + counts[i]]
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # row -> planned error (read() raises it)
    unknown: dict[int, list] = field(default_factory=dict)  # row -> raw values of its error the taxonomy lacks
    notes: dict[str, int] = field(default_factory=dict)  # counts for the summary, e.g. crowd boxes

    def __len__(self) -> int:
        return len(self.keys)

    def row_extra(self, i: int) -> dict:
        """Item i's own extra entries (JSON-able): fields and error, not shared data or arrays."""
        extra = {name: values[i] for name, values in self.fields.items() if values[i] is not None}
        if i in self.errors:
            extra["error"] = self.errors[i]
        if i in self.unknown:
            extra["unknown"] = self.unknown[i]
        return extra

    def item(self, i: int) -> WorkItem:
        arrays = {name: values[starts[i]: starts[i] + counts[i]]
                  for name, (values, starts, counts) in self.arrays.items()}
        annotation = self.annotations[i] if self.annotations is not None else None
        return materialize(self.keys[i], self.images[i], annotation, self.root, self.shared,
                           self.row_extra(i), arrays)

    def __iter__(self) -> Iterator[WorkItem]:
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        return (self.item(i) for i in order)


def relative_to(path: str, root: str) -> str:
    prefix = root.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else Path(path).as_posix()


def materialize(key: str, image: str, annotation: str | None, root: str, shared: dict, extra: dict,
                arrays: dict[str, np.ndarray]) -> WorkItem:
    """The WorkItem a reader's read() gets, the same whether planned in memory or loaded from disk."""
    sources = {"image": relative_to(image, root)}
    if annotation is not None:
        sources["annotation"] = relative_to(annotation, root)
    # Array slices become plain lists: a WorkItem stays comparable and cheap to pickle, and only one
    # shard's worth of them exists at a time.
    lists = {name: values.tolist() for name, values in arrays.items()}
    extra, shared = dict(extra), dict(shared)
    error, index = extra.pop("error", None), shared.pop("index", None)
    return WorkItem(key=key, image=image, annotation=annotation, extra={**shared, **extra, **lists},
                    sources=sources, index=index, error=error)
