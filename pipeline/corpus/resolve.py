"""A recipe read against the taxonomies: each entry's taxonomy, root folder and splits, or every problem at once.

Both `ssiw corpus check` and `ssiw corpus build` start here, so a recipe naming an unknown dataset or
split fails in the same words before anything is read or written.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pipeline.corpus.recipe import CorpusRecipe, DatasetRecipe
from pipeline.errors import BadInput
from pipeline.taxonomy.load import TaxonomySet, load_taxonomy_set
from pipeline.taxonomy.schema import DatasetTaxonomy


@dataclass(frozen=True)
class ResolvedDataset:
    entry: DatasetRecipe
    taxonomy: DatasetTaxonomy
    root: Path
    splits: tuple[str, ...]


def load_recipe_taxonomies(recipe: CorpusRecipe) -> TaxonomySet:
    """The shipped taxonomies with the recipe's folders layered over them (later ones win)."""
    return load_taxonomy_set([Path(f) for f in recipe.taxonomies] or None)


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _release_problems(i: int, entry: DatasetRecipe, tax: DatasetTaxonomy) -> list[str]:
    """Release facts about a split the taxonomy does not have: a typo that would go unchecked."""
    if entry.release is None:
        return []
    problems = []
    for what in ("images", "parts"):
        for split in getattr(entry.release, what):
            if split not in tax.splits:
                problems.append(f"datasets[{i}] ({entry.name}).release.{what}: no split {split!r}; the taxonomy "
                                f"has {', '.join(tax.splits)}")
    return problems


def resolve(recipe: CorpusRecipe, taxset: TaxonomySet, where: str = "recipe") -> list[ResolvedDataset]:
    """Every recipe entry with its taxonomy, root and splits; BadInput listing all unknown datasets and
    splits (and entries without a root) when there are any."""
    problems: list[str] = []
    resolved: list[ResolvedDataset] = []
    for i, entry in enumerate(recipe.datasets):
        tax = taxset.datasets.get(entry.name)
        if tax is None:
            problems.append(f"datasets[{i}].name: no taxonomy named {entry.name!r}"
                            f"{_did_you_mean(entry.name, taxset.datasets)}")
            continue
        unknown = [s for s in entry.splits or [] if s not in tax.splits]
        for split in unknown:
            problems.append(f"datasets[{i}] ({entry.name}): no split {split!r}; the taxonomy has "
                            f"{', '.join(tax.splits)}")
        problems += _release_problems(i, entry, tax)
        try:
            root = recipe.dataset_root(entry)
        except BadInput as e:
            problems.append(f"datasets[{i}]: {e}")
            continue
        if not unknown:
            resolved.append(ResolvedDataset(entry, tax, root, tuple(entry.splits or tax.splits)))
    if problems:
        raise BadInput(f"{where}: " + "; ".join(problems))
    return resolved
