"""The training label space: which embedding-table rows the softmax runs over, and where each
dataset's class indices land among them. A checkpoint stores it (to_dict) so inference needs no table.

Held-out labels (registry keys) are not in it: a class meaning a held-out label has column -1, so
its pixels are ignored and its boxes dropped, and no other pixel is pushed away from its text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput, UnknownName


def class_label_keys(table, dataset: str, taxonomies: Path | None = None) -> list[str]:
    """The registry label key of each class index of `dataset`. The table's lookup names the row's
    label; a class with its own description override has the row key '<dataset>/<class name>', and
    its registry label then comes from the dataset's taxonomy."""
    keys = [table.labels[int(r)] for r in table.rows_for(dataset)]
    if any("/" in k for k in keys):
        from pipeline.taxonomy.load import load_taxonomy_set

        tax = load_taxonomy_set(taxonomies).dataset(dataset)
        if len(tax.classes) != len(keys):
            raise BadInput(f"the taxonomy of {dataset} has {len(tax.classes)} classes, the embedding table "
                             f"{len(keys)}: re-run `ssiw embed`")
        keys = [c.label if "/" in k else k for k, c in zip(keys, tax.classes)]
    return keys


@dataclass
class LabelSpace:
    datasets: list[str]
    rows: np.ndarray  # table rows used, sorted and unique: the softmax's columns
    vectors: np.ndarray  # (K, C) L2-normalised, one per column
    columns: dict[str, np.ndarray]  # dataset -> column of each class index (-1: held out)
    encoder: str | None = None  # the table's text encoder, to embed new label texts alike
    labels: dict[str, list[str]] = field(default_factory=dict)  # dataset -> registry key of each class index
    held_out: list[str] = field(default_factory=list)
    names: list[str] | None = None  # the table's label key of each column (for label PNGs in this space)

    @classmethod
    def from_table(cls, table, datasets: list[str], held_out: list[str] | tuple[str, ...] = (),
                   taxonomies: Path | None = None, present: dict[str, set[int]] | None = None) -> LabelSpace:
        """Classes of held-out labels, and with `present` (dataset -> class indices that occur in its
        shards, from the manifests) classes that never occur, stay out of the softmax: a taxonomy that
        lists more classes than its data has (OpenImages lists all 601 boxable classes; masks cover
        350) then costs nothing. Such a class gets column -1, which the pixel loss treats as ignore."""
        per, keys = {}, {}
        for name in datasets:
            try:
                per[name] = np.asarray(table.rows_for(name), dtype=np.int64)
            except KeyError as e:
                raise UnknownName(f"the embedding table has no rows for dataset {name!r} (embed its taxonomy first)") from e
            keys[name] = class_label_keys(table, name, taxonomies)
        held = set(held_out)
        kept = {name: np.array([k not in held for k in keys[name]], dtype=bool) for name in datasets}
        for name, wanted in (present or {}).items():
            if name in kept and wanted is not None:
                kept[name] &= np.isin(np.arange(len(kept[name])), sorted(wanted))
        used = [per[name][kept[name]] for name in datasets]
        rows = np.unique(np.concatenate(used)) if used else np.zeros(0, np.int64)
        if rows.size == 0:
            raise BadInput(f"every training class is held out ({sorted(held)}) or absent: nothing left to train on")
        vectors = np.asarray(table.vectors, dtype=np.float32)[rows]
        labels = getattr(table, "labels", None)
        names = [str(labels[r]) for r in rows] if labels is not None else None
        columns = {name: np.where(kept[name], np.searchsorted(rows, per[name]), -1) for name in datasets}
        return cls(list(datasets), rows, vectors, columns, table.encoder, keys, sorted(held), names)

    def to_dict(self) -> dict:
        """Plain lists and arrays, as the checkpoint's "label_space" entry. It records the labels the
        model was trained on and those held out, so `ssiw eval` can say which labels are zero-shot."""
        return {"datasets": self.datasets, "rows": self.rows, "vectors": self.vectors, "columns": self.columns,
                "encoder": self.encoder, "class_labels": self.labels, "held_out": self.held_out,
                "trained_labels": self.trained_labels if self.labels else None, "names": self.names}

    @classmethod
    def from_dict(cls, state: dict) -> LabelSpace:
        return cls(
            list(state["datasets"]), np.asarray(state["rows"]), np.asarray(state["vectors"], dtype=np.float32),
            {name: np.asarray(c) for name, c in state["columns"].items()}, state.get("encoder"),
            {name: list(k) for name, k in (state.get("class_labels") or {}).items()},
            list(state.get("held_out") or []), state.get("names"),
        )

    def held_out_classes(self, dataset: str) -> np.ndarray:
        """Class indices of `dataset` that mean a held-out label."""
        return np.flatnonzero(self.columns[dataset] < 0)

    @property
    def trained_labels(self) -> list[str]:
        """Registry keys of every label some training class means and that is not held out."""
        return sorted({k for name in self.datasets for k, c in zip(self.labels.get(name, []), self.columns[name])
                       if c >= 0})

    def column_mask(self, dataset: str) -> np.ndarray:
        mask = np.zeros(len(self.rows), dtype=bool)
        cols = self.columns[dataset]
        mask[cols[cols >= 0]] = True
        return mask

    def vectors_for(self, dataset: str, table=None) -> np.ndarray:
        """(K, C) vectors of `dataset`'s classes: the table's when given (any dataset it embeds), else
        this space's (training datasets only)."""
        if table is not None:
            return np.asarray(table.vectors_for(dataset), dtype=np.float32)
        if dataset not in self.columns:
            raise UnknownName(f"the run did not train on {dataset!r}; give --table with its embeddings "
                              f"(text encoder {self.encoder})")
        return self.dataset_vectors(dataset)

    def dataset_vectors(self, dataset: str) -> np.ndarray:
        cols = self.columns[dataset]
        if (cols < 0).any():
            raise UnknownName(f"{dataset!r}: {int((cols < 0).sum())} of its classes were held-out classes or absent "
                              "from its shards in training, so they have no vector in the training label space; "
                              "give --table to embed all its labels")
        return self.vectors[cols]


def classes_present(shard_dir, dataset: str, split: str) -> set[int] | None:
    """Class indices that occur in a converted split, from its manifest (None without one)."""
    from pipeline import storage
    from pipeline.shard_format import manifest_name

    manifest = storage.join(storage.as_location(shard_dir), dataset, manifest_name(split))
    if not storage.exists(manifest):
        return None
    column = storage.read_parquet(manifest).get_column("classes_present")
    return {int(c) for c in column.explode().drop_nulls().to_list()}
