"""The description cache: one row per label, a parquet file written to a temporary name then renamed.

Columns: label (registry key), title (Wikipedia title asked for), text (the cleaned description
sentence, without the "An image of" head), source ("wikipedia" or "registry"), fetched_at (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import BadInput
from pipeline.safe_write import atomic_path

CACHE_FILE = "descriptions.parquet"
COLUMNS = ("label", "title", "text", "source", "fetched_at")
SOURCES = ("wikipedia", "registry")


@dataclass(frozen=True)
class CachedDescription:
    label: str
    title: str
    text: str
    source: str
    fetched_at: datetime

    @staticmethod
    def now(label: str, title: str, text: str, source: str) -> CachedDescription:
        return CachedDescription(label, title, text, source, datetime.now(timezone.utc))


def cache_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / CACHE_FILE


def read_cache(path: Path) -> dict[str, CachedDescription]:
    """Label key -> cached row; an absent file is an empty cache. A malformed file is an error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        return {}
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:  # what pyarrow raises for a damaged file
        raise BadInput(f"{path}: not a readable parquet file ({e})") from e
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise BadInput(f"{path}: description cache lacks columns {missing}")
    rows: dict[str, CachedDescription] = {}
    for row in table.select(list(COLUMNS)).to_pylist():
        if row["source"] not in SOURCES:
            raise BadInput(f"{path}: label {row['label']!r} has unknown source {row['source']!r}")
        rows[row["label"]] = CachedDescription(**row)
    return rows


def write_cache(path: Path, rows: dict[str, CachedDescription]) -> Path:
    """Write every row, sorted by label, to `path` via a temporary file in the same folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    ordered = [rows[k] for k in sorted(rows)]
    table = pa.table(
        {
            "label": pa.array([r.label for r in ordered], pa.string()),
            "title": pa.array([r.title for r in ordered], pa.string()),
            "text": pa.array([r.text for r in ordered], pa.string()),
            "source": pa.array([r.source for r in ordered], pa.string()),
            "fetched_at": pa.array([r.fetched_at for r in ordered], pa.timestamp("us", tz="UTC")),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path
