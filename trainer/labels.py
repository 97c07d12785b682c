"""The training label space: which embedding-table rows the softmax runs over, and where each
dataset's class indices land among them. A checkpoint stores it (to_dict) so inference needs no table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import UnknownName


@dataclass
class LabelSpace:
    datasets: list[str]
    rows: np.ndarray  # table rows used, sorted and unique: the softmax's columns
    vectors: np.ndarray  # (K, C) L2-normalised, one per column
    columns: dict[str, np.ndarray]  # dataset -> column of each class index
    encoder: str | None = None  # the table's text encoder, to embed new label texts alike
    names: list[str] | None = None  # the table's label key of each column (for label PNGs in this space)

    @classmethod
    def from_table(cls, table, datasets: list[str]) -> LabelSpace:
        per = {}
        for name in datasets:
            try:
                per[name] = np.asarray(table.rows_for(name), dtype=np.int64)
            except KeyError as e:
                raise UnknownName(f"the embedding table has no rows for dataset {name!r} (embed its taxonomy first)") from e
        rows = np.unique(np.concatenate(list(per.values())))
        vectors = np.asarray(table.vectors, dtype=np.float32)[rows]
        columns = {name: np.searchsorted(rows, r) for name, r in per.items()}
        labels = getattr(table, "labels", None)
        names = [str(labels[r]) for r in rows] if labels is not None else None
        return cls(list(datasets), rows, vectors, columns, table.encoder, names)

    def to_dict(self) -> dict:
        """Plain lists and arrays, as the checkpoint's "label_space" entry."""
        return {"datasets": self.datasets, "rows": self.rows, "vectors": self.vectors, "columns": self.columns,
                "encoder": self.encoder, "names": self.names}

    @classmethod
    def from_dict(cls, state: dict) -> LabelSpace:
        return cls(
            list(state["datasets"]), np.asarray(state["rows"]), np.asarray(state["vectors"], dtype=np.float32),
            {name: np.asarray(c) for name, c in state["columns"].items()}, state.get("encoder"),
            state.get("names"),
        )

    def column_mask(self, dataset: str) -> np.ndarray:
        mask = np.zeros(len(self.rows), dtype=bool)
        mask[self.columns[dataset]] = True
        return mask

    def dataset_vectors(self, dataset: str) -> np.ndarray:
        return self.vectors[self.columns[dataset]]
