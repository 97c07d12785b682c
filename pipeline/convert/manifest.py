"""Assemble the final manifest and quarantine report of a split from its shard parts, and the index.

These run once at the end of a job, in the driver, from what the parts say, so they are correct
however many times the job was killed and resumed.
"""

from __future__ import annotations

import json

from pipeline import storage
from pipeline.convert.plan import ShardPlan
from pipeline.convert.shard import read_part
from pipeline.errors import NotFound
from pipeline.names import path_name
from pipeline.safe_write import atomic_path, write_text_atomic
from pipeline.shard_format import INDEX_FILE, MANIFEST_SUFFIX, manifest_name, quarantine_name
from pipeline.taxonomy.schema import DatasetTaxonomy

__all__ = ["INDEX_FILE", "assemble_split", "build_index", "manifest_path", "quarantine_path"]


def manifest_path(out_ds: storage.Location, split: str) -> storage.Location:
    return storage.join(out_ds, manifest_name(path_name(split, "split name")))


def quarantine_path(out_ds: storage.Location, split: str) -> storage.Location:
    return storage.join(out_ds, quarantine_name(path_name(split, "split name")))


def _manifest_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("dataset", pa.string()),
            ("split", pa.string()),
            ("supervision", pa.string()),
            ("key", pa.string()),
            ("shard", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("image_ext", pa.string()),
            ("classes_present", pa.list_(pa.int32())),
            ("class_pixels", pa.list_(pa.int64())),  # per class in classes_present; box data: box area
            ("num_boxes", pa.int32()),
            ("bytes", pa.int64()),
        ]
    )


def _write_parquet(table, final: storage.Location) -> None:
    import pyarrow.parquet as pq

    with atomic_path(final) as tmp:
        pq.write_table(table, tmp)


def assemble_split(
    out_ds: storage.Location, tax: DatasetTaxonomy, split: str, plans: list[ShardPlan], notes: dict | None = None
) -> tuple[int, int]:
    """Write `<split>.manifest.parquet` and `<split>.quarantine.jsonl`; returns (written, quarantined).
    With `notes`, what reading did to the written samples (Sample.notes, summed in each shard part) is
    added to it, by reason (a part from before notes existed counts nothing)."""
    import pyarrow as pa

    rows: list[dict] = []
    quarantine: list[dict] = []
    for plan in plans:
        part = read_part(out_ds, plan.name)
        if part is None:
            raise RuntimeError(f"{out_ds}: shard part {plan.name} is missing; re-run the conversion")
        rows += part["samples"]
        quarantine += part["quarantine"]
        for reason, count in (part.get("notes") or {}).items() if notes is not None else ():
            notes[reason] = notes.get(reason, 0) + int(count)
    common = {"dataset": tax.name, "split": split, "supervision": tax.supervision.value}
    table = pa.Table.from_pylist([{**common, **r} for r in rows], schema=_manifest_schema())
    _write_parquet(table, manifest_path(out_ds, split))
    lines = "".join(json.dumps(q, sort_keys=True) + "\n" for q in quarantine)
    write_text_atomic(quarantine_path(out_ds, split), lines)
    return len(rows), len(quarantine)


def build_index(out_dir: storage.Location) -> storage.Location:
    """shards/index.parquet: one row per (dataset, split, shard) over every manifest under out_dir."""
    import polars as pl

    manifests = storage.glob(out_dir, f"*/*{MANIFEST_SUFFIX}")
    frames = [storage.read_parquet(p) for p in manifests]
    columns = {"dataset": pl.Utf8, "split": pl.Utf8, "shard": pl.Utf8, "supervision": pl.Utf8,
               "samples": pl.UInt32, "bytes": pl.Int64}
    if frames:
        index = (
            pl.concat(frames)
            .group_by(["dataset", "split", "shard"])
            .agg(pl.col("supervision").first(), pl.len().alias("samples"))
            .sort(["dataset", "split", "shard"])
        )
        # One listing per dataset folder: a HEAD per shard is slow on an object store.
        listings = {d: storage.list_files(storage.join(out_dir, d)) for d in set(index["dataset"])}
        missing = [storage.join(out_dir, d, s) for d, s in zip(index["dataset"], index["shard"]) if s not in listings[d]]
        if missing:
            raise NotFound(f"shards listed in a manifest are missing: {missing[:3]}")
        sizes = [listings[d][s] for d, s in zip(index["dataset"], index["shard"])]
        index = index.with_columns(pl.Series("bytes", sizes, dtype=pl.Int64))
    else:
        index = pl.DataFrame(schema=columns)
    final = storage.join(out_dir, INDEX_FILE)
    _write_parquet(index.select(list(columns)).cast(columns).to_arrow(), final)
    return final
