"""Which description each label gets, and the list of texts the embed stage encodes.

Precedence: a class's `description` override in a dataset YAML, then a Wikipedia sentence in the
description cache, then the registry's own description. A class with an override gets its own
entry keyed "<dataset>/<class name>"; every other class shares its registry label's entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.describe.cache import CachedDescription
from pipeline.describe.sentence import label_text
from pipeline.errors import BadInput
from pipeline.taxonomy.load import TaxonomySet
from pipeline.taxonomy.schema import Label


@dataclass(frozen=True)
class LabelEntry:
    key: str  # registry key, or "<dataset>/<class name>" for an override
    base_label: str  # the registry key it derives from
    name: str  # display name
    description: str
    source: str  # "override", "wikipedia" or "registry"
    group: str

    def text(self, mode: str = "sentence") -> str:
        """Sentence mode: "An image of {name}. {description}"; word mode: the name alone."""
        if mode == "word":
            return self.name
        if mode == "sentence":
            return label_text(self.name, self.description)
        raise BadInput(f"unknown text mode {mode!r}: use 'sentence' or 'word'")


def override_key(dataset: str, class_name: str) -> str:
    return f"{dataset}/{class_name}"


def registry_description(key: str, label: Label, cache: dict[str, CachedDescription]) -> tuple[str, str]:
    """(description, source) for a registry label: the cached Wikipedia sentence when it was
    fetched for the label's current Wikipedia title, else the registry's own text (always current)."""
    cached = cache.get(key)
    if (
        cached is not None
        and cached.source == "wikipedia"
        and cached.title == label.wikipedia
        and cached.text
    ):
        return cached.text, "wikipedia"
    return label.description, "registry"


def label_entries(taxset: TaxonomySet, cache: dict[str, CachedDescription]) -> list[LabelEntry]:
    """Every registry label (sorted by key), then one entry per class override (dataset, class order)."""
    labels = taxset.registry.labels
    entries = []
    for key in sorted(labels):
        label = labels[key]
        description, source = registry_description(key, label, cache)
        entries.append(LabelEntry(key, key, label.name, description, source, label.group.value))
    for dataset in sorted(taxset.datasets):
        for entry in taxset.datasets[dataset].classes:
            if entry.description is None:
                continue
            label = labels[entry.label]
            entries.append(
                LabelEntry(
                    override_key(dataset, entry.name),
                    entry.label,
                    label.name,
                    entry.description.strip(),
                    "override",
                    label.group.value,
                )
            )
    return entries
