"""corpus.json: what `ssiw corpus build` made, the one file a training config names (`corpus: PATH`).

Written last by a build, beside the shards (`<out>/corpus.json`); the trainer reads it back with
`read_summary` to find the shards, the embedding tables, the taxonomy folders and the datasets.
Paths in it are absolute (or s3:// URLs), so the file can be named from any directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import BadInput, NotFound

SUMMARY_FILE = "corpus.json"
REPORT_FILE = "corpus.html"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSummary(_Strict):
    samples: int = Field(description="samples written into shards")
    quarantined: dict[str, int] = Field(default_factory=dict, description="reason -> samples quarantined")
    shards: int
    bytes: int
    labels_seen: int = Field(description="classes with at least one pixel or box in the split")


class DatasetSummary(_Strict):
    name: str
    supervision: str = Field(description="dense, coarse or box")
    role: str = Field(description="train or eval")
    root: str
    classes: int = Field(description="classes in the taxonomy")
    dataset_hash: str = Field(description="pipeline.corpus.recipe.dataset_hash of its recipe entry")
    splits: dict[str, SplitSummary]
    preview: str | None = Field(default=None, description="the dataset's preview page, relative to the report")
    subset: str | None = Field(default=None, description="the seeded cap its splits were converted with, "
                               "e.g. 'max_samples=100 seed=0'; None: every sample")


class CorpusSummary(_Strict):
    name: str
    recipe: str = Field(description="the recipe file the corpus was built from")
    recipe_hash: str
    code_version: str
    built_at: str = Field(description="UTC, ISO 8601")
    shards: str = Field(description="shard folder or s3:// URL")
    cache: str
    taxonomies: list[str] = Field(description="taxonomy folders layered over the shipped set")
    encoder: str
    tables: dict[str, str] = Field(description="mode (sentence, word) -> embedding table parquet")
    box_embeddings: str | None = None
    datasets: dict[str, DatasetSummary]

    def training_split(self, dataset: str) -> str | None:
        """The split a training config trains `dataset` on by default: its first built split whose name
        starts with "train" (train, training, train2017); None for an evaluation-only dataset."""
        d = self.datasets[dataset]
        if d.role != "train":
            return None
        return next((s for s in d.splits if s.startswith("train")), None)

    def training_datasets(self) -> list[tuple[str, str]]:
        """(dataset, split) for every dataset a run trains on by default, in the recipe's order."""
        return [(name, split) for name in self.datasets if (split := self.training_split(name)) is not None]

    def default_table(self) -> str:
        """The sentence table (the paper's label text), else the first one built."""
        return self.tables.get("sentence") or next(iter(self.tables.values()))


def read_summary(path: str | Path) -> CorpusSummary:
    """corpus.json from a file or its folder, local or s3://."""
    from pipeline import storage

    where = storage.as_location(path)
    if not str(where).endswith(".json"):
        where = storage.join(where, SUMMARY_FILE)
    if not storage.exists(where):
        raise NotFound(f"{where}: no corpus.json here (`ssiw corpus build RECIPE` writes it beside the shards)")
    try:
        return CorpusSummary.model_validate(json.loads(storage.read_text(where)))
    except (ValueError, ValidationError) as e:
        raise BadInput(f"{where}: not a corpus.json this version can read: {e}") from e
