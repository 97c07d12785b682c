"""The embed stage: label texts -> an embedding table, skipped when its inputs have not changed.

Rows are the registry labels (sorted by key) plus, in sentence mode, one row per class whose
taxonomy YAML overrides its description. In word mode an override changes nothing (the text is
the name alone), so such classes share their registry label's row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.describe.cache import cache_path, read_cache
from pipeline.describe.texts import LabelEntry, label_entries, override_key
from pipeline.embed.encoders import DEFAULT_ENCODER, TextEncoder, get_encoder
from pipeline.embed.table import LookupRow, stored_inputs_hash, table_path, write_table
from pipeline.errors import BadInput
from pipeline.taxonomy.load import TaxonomySet

MODES = ("sentence", "word")
FORMAT_VERSION = "1"  # bump when the table layout or row rules change


@dataclass(frozen=True)
class EmbedPlan:
    keys: list[str]
    texts: list[str]
    lookup: list[LookupRow]
    entries: dict[str, LabelEntry]  # key -> entry (name, group, base label)


@dataclass(frozen=True)
class EmbedResult:
    path: Path
    rows: int
    skipped: bool  # the table was already up to date


def plan_rows(taxset: TaxonomySet, cache_dir: Path, mode: str) -> EmbedPlan:
    """The texts to encode and where each dataset class points, from the taxonomy and description cache."""
    if mode not in MODES:
        raise BadInput(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    entries = label_entries(taxset, read_cache(cache_path(cache_dir)))
    if mode == "word":
        entries = [e for e in entries if e.source != "override"]
    by_key = {e.key: e for e in entries}
    row_of = {e.key: i for i, e in enumerate(entries)}
    lookup = []
    for dataset in sorted(taxset.datasets):
        for index, cls in enumerate(taxset.datasets[dataset].classes):
            key = override_key(dataset, cls.name)
            key = key if key in row_of else cls.label
            lookup.append(LookupRow(dataset, index, cls.name, key, row_of[key]))
    return EmbedPlan([e.key for e in entries], [e.text(mode) for e in entries], lookup, by_key)


def inputs_hash(plan: EmbedPlan, encoder: TextEncoder, mode: str) -> str:
    payload = {
        "format": FORMAT_VERSION,
        "encoder": encoder.fingerprint,
        "mode": mode,
        "rows": list(zip(plan.keys, plan.texts)),
        "lookup": [(r.dataset, r.class_index, r.class_name, r.label) for r in plan.lookup],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def embed_labels(
    taxset: TaxonomySet,
    cache_dir: Path,
    encoder: str | TextEncoder = DEFAULT_ENCODER,
    mode: str = "sentence",
    *,
    device: str | None = None,
    batch_size: int = 64,
    force: bool = False,
) -> EmbedResult:
    """Write cache/embeddings/<encoder_id>-<mode>.parquet (+ lookup) unless it is already current."""
    enc = get_encoder(encoder, device) if isinstance(encoder, str) else encoder
    plan = plan_rows(taxset, cache_dir, mode)
    digest = inputs_hash(plan, enc, mode)
    path = table_path(cache_dir, enc.id, mode)
    if not force and stored_inputs_hash(path) == digest:
        return EmbedResult(path, len(plan.keys), skipped=True)
    vectors = enc.encode(plan.texts, batch_size=batch_size)
    write_table(path, plan.keys, plan.texts, vectors, enc.spec, mode, digest, plan.lookup)
    return EmbedResult(path, len(plan.keys), skipped=False)
