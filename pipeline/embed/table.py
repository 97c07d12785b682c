"""The embedding table (one row per label text) and its lookup (dataset class -> row).

<encoder_id>-<mode>.parquet: label, text, vector (float32 list, unit length), encoder (its spec),
dim, inputs_hash; the mode is in the schema metadata. <encoder_id>-<mode>.lookup.parquet:
dataset, class_index, class_name, label, row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput, NotFound, UnknownName
from pipeline.safe_write import atomic_path

TABLE_COLUMNS = ("label", "text", "vector", "encoder", "dim", "inputs_hash")
LOOKUP_COLUMNS = ("dataset", "class_index", "class_name", "label", "row")
EMBED_DIR = "embeddings"


def table_path(cache_dir: Path, encoder_id: str, mode: str) -> Path:
    return Path(cache_dir) / EMBED_DIR / f"{encoder_id}-{mode}.parquet"


def lookup_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".parquet") + ".lookup.parquet")


@dataclass(frozen=True)
class LookupRow:
    dataset: str
    class_index: int
    class_name: str
    label: str
    row: int


@dataclass
class EmbeddingTable:
    path: Path
    labels: list[str]
    texts: list[str]
    vectors: np.ndarray  # N x D float32, rows of unit length
    encoder: str
    mode: str
    inputs_hash: str
    lookup: list[LookupRow] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.lookup})

    def row_of(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise UnknownName(f"{self.path}: no row for label {label!r}") from None

    def rows_for(self, dataset: str) -> np.ndarray:
        """Row of the table for each class index of `dataset` (int64 array of length K)."""
        rows = sorted((r.class_index, r.row) for r in self.lookup if r.dataset == dataset)
        if not rows:
            raise UnknownName(
                f"{lookup_path(self.path)}: no dataset {dataset!r} (known: {', '.join(self.datasets)})"
            )
        return np.array([row for _, row in rows], dtype=np.int64)

    def vectors_for(self, dataset: str) -> np.ndarray:
        """K x D class embeddings of `dataset`, in class-index order."""
        return self.vectors[self.rows_for(dataset)]


def _replace(table, path: Path, metadata: dict[str, str] | None = None) -> None:
    import pyarrow.parquet as pq

    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_table(
    path: Path,
    labels: list[str],
    texts: list[str],
    vectors: np.ndarray,
    encoder: str,
    mode: str,
    inputs_hash: str,
    lookup: list[LookupRow],
) -> Path:
    """Write the lookup, then the table (each via a temporary file): a table whose hash matches
    therefore always has its lookup beside it."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if not (len(labels) == len(texts) == n):
        raise ValueError(f"{path}: {len(labels)} labels, {len(texts)} texts but {n} vectors")
    flat = pa.array(vectors.reshape(-1), pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    table = pa.table(
        {
            "label": pa.array(labels, pa.string()),
            "text": pa.array(texts, pa.string()),
            "vector": pa.ListArray.from_arrays(offsets, flat),
            "encoder": pa.array([encoder] * n, pa.string()),
            "dim": pa.array([dim] * n, pa.int32()),
            "inputs_hash": pa.array([inputs_hash] * n, pa.string()),
        }
    )
    lookup_table = pa.table(
        {
            "dataset": pa.array([r.dataset for r in lookup], pa.string()),
            "class_index": pa.array([r.class_index for r in lookup], pa.int32()),
            "class_name": pa.array([r.class_name for r in lookup], pa.string()),
            "label": pa.array([r.label for r in lookup], pa.string()),
            "row": pa.array([r.row for r in lookup], pa.int32()),
        }
    )
    _replace(lookup_table, lookup_path(path))
    _replace(table, Path(path), {"ssiw.mode": mode, "ssiw.encoder": encoder})
    return Path(path)


def stored_inputs_hash(path: Path) -> str | None:
    """The inputs hash of an existing table (None when there is no readable table with its lookup)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists() or not lookup_path(path).exists():
        return None
    try:
        column = pq.read_table(path, columns=["inputs_hash"]).column("inputs_hash")
    except (OSError, KeyError, pa.ArrowException):  # a damaged or foreign file is simply rebuilt
        return None
    return column[0].as_py() if len(column) else None


def load_table(path: Path) -> EmbeddingTable:
    """Read a table and its lookup; a missing or malformed file is an error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    for p in (path, lookup_path(path)):
        if not p.exists():
            raise NotFound(f"{p}: no such embedding file (run `ssiw embed` first)")
    try:
        table = pq.read_table(path)
        lookup = pq.read_table(lookup_path(path))
    except (OSError, pa.ArrowException) as e:  # what pyarrow raises for a damaged file
        raise BadInput(f"{path}: not a readable embedding table ({e})") from e
    for t, p, cols in ((table, path, TABLE_COLUMNS), (lookup, lookup_path(path), LOOKUP_COLUMNS)):
        missing = [c for c in cols if c not in t.column_names]
        if missing:
            raise BadInput(f"{p}: missing columns {missing}")
    n = table.num_rows
    if n == 0:
        raise BadInput(f"{path}: the table has no rows")
    dim = table.column("dim")[0].as_py()
    flat = np.asarray(table.column("vector").combine_chunks().flatten(), dtype=np.float32)
    if flat.size != n * dim:
        raise BadInput(f"{path}: vectors hold {flat.size} values, expected {n} x {dim}")
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    rows = [LookupRow(**r) for r in lookup.select(list(LOOKUP_COLUMNS)).to_pylist()]
    bad = [r for r in rows if not 0 <= r.row < n]
    if bad:
        raise BadInput(f"{lookup_path(path)}: {len(bad)} rows point outside the table (e.g. {bad[0]})")
    return EmbeddingTable(
        path=path,
        labels=table.column("label").to_pylist(),
        texts=table.column("text").to_pylist(),
        vectors=flat.reshape(n, dim),
        encoder=table.column("encoder")[0].as_py(),
        mode=metadata.get("ssiw.mode", ""),
        inputs_hash=table.column("inputs_hash")[0].as_py(),
        lookup=rows,
    )
