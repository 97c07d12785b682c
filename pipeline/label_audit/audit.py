"""Audit: for each label, its nearest labels used by other datasets, with likely conflicts flagged.

When a new dataset maps "lorry" to a new label while another dataset already has "truck", the two
embeddings sit very close and training would push them apart or blur them: a likely duplicate.
Somewhat lower similarity is flagged as ambiguous, worth a look.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.embed.table import EmbeddingTable
from pipeline.errors import BadInput, UnknownName
from pipeline.taxonomy.load import TaxonomySet

DUPLICATE = "duplicate?"
AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Neighbour:
    label: str
    similarity: float
    datasets: list[str]
    flag: str  # "", AMBIGUOUS or DUPLICATE


@dataclass(frozen=True)
class AuditEntry:
    label: str
    datasets: list[str]
    neighbours: list[Neighbour]

    @property
    def flagged(self) -> bool:
        return any(n.flag for n in self.neighbours)


def flag_for(similarity: float, duplicate: float, ambiguous: float) -> str:
    if similarity >= duplicate:
        return DUPLICATE
    if similarity >= ambiguous:
        return AMBIGUOUS
    return ""


def audit_labels(
    table: EmbeddingTable,
    taxset: TaxonomySet,
    *,
    top: int = 3,
    duplicate: float = 0.9,
    ambiguous: float = 0.8,
    dataset: str | None = None,
) -> list[AuditEntry]:
    """Nearest labels from OTHER datasets: a candidate must be used by a dataset that does not use the
    label itself (two labels of one dataset are told apart by that dataset's annotation)."""
    if not ambiguous <= duplicate:
        raise BadInput(
            f"the ambiguous threshold ({ambiguous}) must not exceed the duplicate one ({duplicate})"
        )
    usage = taxset.label_usage()
    keys = sorted(taxset.registry.labels)
    missing = [k for k in keys if k not in table.labels]
    if missing:
        raise BadInput(f"{table.path}: no rows for labels {missing[:5]} (embed again with this taxonomy)")
    vectors = table.vectors[[table.row_of(k) for k in keys]]
    sim = vectors @ vectors.T
    subjects = keys if dataset is None else [k for k in keys if dataset in usage.get(k, [])]
    if dataset is not None and dataset not in taxset.datasets:
        raise UnknownName(f"no taxonomy named {dataset!r} in {taxset.folder}")
    index = {k: i for i, k in enumerate(keys)}
    entries = []
    for key in subjects:
        own = set(usage.get(key, []))
        candidates = [j for j, other in enumerate(keys) if other != key and set(usage.get(other, [])) - own]
        order = sorted(candidates, key=lambda j: -sim[index[key], j])[:top]
        neighbours = [
            Neighbour(
                keys[j],
                float(sim[index[key], j]),
                usage[keys[j]],
                flag_for(sim[index[key], j], duplicate, ambiguous),
            )
            for j in order
        ]
        entries.append(AuditEntry(key, usage.get(key, []), neighbours))
    return entries


def flagged_pairs(entries: list[AuditEntry]) -> list[tuple[str, str, float, str]]:
    """Each flagged pair once, most similar first."""
    pairs: dict[tuple[str, str], tuple[float, str]] = {}
    for entry in entries:
        for n in entry.neighbours:
            if n.flag:
                pairs[tuple(sorted((entry.label, n.label)))] = (n.similarity, n.flag)  # type: ignore[index]
    return sorted(((a, b, s, f) for (a, b), (s, f) in pairs.items()), key=lambda p: -p[2])
