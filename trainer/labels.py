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

    @classmethod
    def from_table(cls, table, datasets: list[str], present: dict[str, set[int]] | None = None) -> LabelSpace:
        """`present` (dataset -> class indices that occur in its shards, from the manifests) keeps a
        dataset's other classes out of the softmax: a taxonomy that lists more classes than its data
        has (OpenImages lists all 601 boxable classes; masks cover 350) then costs nothing. Such a
        class gets column -1, which the pixel loss treats as ignore."""
        per, keep = {}, {}
        for name in datasets:
            try:
                per[name] = np.asarray(table.rows_for(name), dtype=np.int64)
            except KeyError as e:
                raise UnknownName(f"the embedding table has no rows for dataset {name!r} (embed its taxonomy first)") from e
            wanted = (present or {}).get(name)
            keep[name] = (np.arange(len(per[name])) if wanted is None
                          else np.array(sorted(c for c in wanted if 0 <= c < len(per[name])), dtype=np.int64))
        rows = np.unique(np.concatenate([per[n][keep[n]] for n in datasets]))
        vectors = np.asarray(table.vectors, dtype=np.float32)[rows]
        columns = {}
        for name, r in per.items():
            columns[name] = np.full(len(r), -1, dtype=np.int64)
            columns[name][keep[name]] = np.searchsorted(rows, r[keep[name]])
        return cls(list(datasets), rows, vectors, columns, table.encoder)

    def to_dict(self) -> dict:
        """Plain lists and arrays, as the checkpoint's "label_space" entry."""
        return {"datasets": self.datasets, "rows": self.rows, "vectors": self.vectors, "columns": self.columns,
                "encoder": self.encoder}

    @classmethod
    def from_dict(cls, state: dict) -> LabelSpace:
        return cls(
            list(state["datasets"]), np.asarray(state["rows"]), np.asarray(state["vectors"], dtype=np.float32),
            {name: np.asarray(c) for name, c in state["columns"].items()}, state.get("encoder"),
        )

    def column_mask(self, dataset: str) -> np.ndarray:
        mask = np.zeros(len(self.rows), dtype=bool)
        cols = self.columns[dataset]
        mask[cols[cols >= 0]] = True
        return mask

    def dataset_vectors(self, dataset: str) -> np.ndarray:
        return self.vectors[self.columns[dataset]]


def classes_present(shard_dir, dataset: str, split: str) -> set[int] | None:
    """Class indices that occur in a converted split, from its manifest (None without one)."""
    from pathlib import Path

    manifest = Path(shard_dir) / dataset / f"{split}.manifest.parquet"
    if not manifest.is_file():
        return None
    import pyarrow.parquet as pq

    column = pq.read_table(manifest, columns=["classes_present"]).column("classes_present")
    return {int(c) for c in column.combine_chunks().flatten().to_numpy()}
