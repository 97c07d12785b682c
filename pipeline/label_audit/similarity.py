"""Pairwise label similarity ordered by category group, the separation score, and the heatmap.

The separation score is the mean cosine between labels of the same group minus the mean cosine
between labels of different groups: higher means the encoder's space keeps groups apart, which is
what sentence embeddings are meant to do better than bare class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.embed.table import EmbeddingTable
from pipeline.errors import BadInput
from pipeline.safe_write import save_figure
from pipeline.taxonomy.load import TaxonomySet
from pipeline.taxonomy.schema import Group

GROUP_ORDER = [g.value for g in Group]


@dataclass(frozen=True)
class LabelSpace:
    keys: list[str]
    names: list[str]
    groups: list[str]
    vectors: np.ndarray  # N x D, unit rows

    def similarity(self) -> np.ndarray:
        return self.vectors @ self.vectors.T


@dataclass(frozen=True)
class Separation:
    within: float
    between: float
    within_pairs: int
    between_pairs: int

    @property
    def score(self) -> float:
        return self.within - self.between


def registry_space(table: EmbeddingTable, taxset: TaxonomySet) -> LabelSpace:
    """The registry labels of the table (not per-class overrides), ordered by group, then key."""
    labels = taxset.registry.labels
    missing = [k for k in labels if k not in table.labels]
    if missing:
        raise BadInput(f"{table.path}: no rows for labels {missing[:5]} (embed again with this taxonomy)")
    keys = sorted(labels, key=lambda k: (GROUP_ORDER.index(labels[k].group.value), k))
    rows = [table.row_of(k) for k in keys]
    return LabelSpace(
        keys, [labels[k].name for k in keys], [labels[k].group.value for k in keys], table.vectors[rows]
    )


def separation(sim: np.ndarray, groups: list[str]) -> Separation:
    g = np.asarray(groups)
    same = g[:, None] == g[None, :]
    off_diagonal = ~np.eye(len(g), dtype=bool)
    within, between = sim[same & off_diagonal], sim[~same]
    if within.size == 0 or between.size == 0:
        raise BadInput("the separation score needs two labels in one group and at least two groups")
    return Separation(
        float(within.mean()), float(between.mean()), int(within.size // 2), int(between.size // 2)
    )


def group_spans(groups: list[str]) -> list[tuple[str, int, int]]:
    """(group, first row, end row) for each run of one group, in order."""
    spans: list[tuple[str, int, int]] = []
    for i, group in enumerate(groups):
        if spans and spans[-1][0] == group:
            spans[-1] = (group, spans[-1][1], i + 1)
        else:
            spans.append((group, i, i + 1))
    return spans


def plot_heatmap(space: LabelSpace, sim: np.ndarray, out: Path, title: str) -> Path:
    """A heatmap of `sim` with group boundaries drawn and group names on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(space.keys)
    size = float(np.clip(4 + n * 0.02, 7, 18))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(sim, cmap="viridis", vmin=min(0.0, float(sim.min())), vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    spans = group_spans(space.groups)
    for _, start, _ in spans[1:]:
        ax.axhline(start - 0.5, color="white", linewidth=0.8)
        ax.axvline(start - 0.5, color="white", linewidth=0.8)
    centres = [(start + end - 1) / 2 for _, start, end in spans]
    names = [f"{group} ({end - start})" for group, start, end in spans]
    ax.set_xticks(centres, names, rotation=60, ha="right", fontsize=9)
    ax.tick_params(length=0)
    if n <= 60:  # few enough to read: every label by name, groups along the bottom
        ax.set_yticks(range(n), [f"{name} ({group})" for name, group in zip(space.names, space.groups)], fontsize=8)
    else:
        ax.set_yticks(centres, names, fontsize=9)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)
