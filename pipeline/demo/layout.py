"""Where the demo keeps things: its datasets' splits, every file it reads or writes, and the
validation images it shows. The run and the report both read this; neither imports the other's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import default_taxonomy_dir
from pipeline.taxonomy.yaml_io import read_yaml

TRAIN_SPLITS = {"demo-ade": "training", "demo-coco": "train2017", "demo-openimages": "train", "demo-objects365": "train"}
VAL_SPLITS = {"demo-ade": "validation", "demo-coco": "val2017", "demo-openimages": "validation",
              "demo-objects365": "val", "demo-heldout": "val"}
HELDOUT = "demo-heldout"
# `make demo` builds its corpus from this shipped recipe, whose paths are under RECIPE_OUT.
DEMO_RECIPE = default_taxonomy_dir() / "corpora" / "demo.yaml"
RECIPE_OUT = "demo-out"


@dataclass
class Paths:
    """Every file the demo reads or writes, derived from the output folder."""

    out: Path

    @property
    def taxonomies(self) -> Path:
        return self.out / "taxonomies"

    @property
    def cache(self) -> Path:
        return self.out / "cache"

    @property
    def shards(self) -> Path:
        return self.out / "shards"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    def table(self, mode: str = "sentence") -> Path:
        return self.cache / "embeddings" / f"minilm-{mode}.parquet"

    def eval_dir(self, run: str, dataset: str) -> Path:
        return self.out / "eval" / run / dataset


def dataset_roots(p: Paths) -> dict[str, Path]:
    return {name: Path(root) for name, root in read_yaml(p.out / "roots.yaml").items()}


def first_validation_items(p: Paths, per_dataset: int) -> dict:
    """dataset -> its first validation WorkItems, planned by the dataset's own reader."""
    from pipeline.convert.readers import get_reader
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(p.taxonomies)
    roots = dataset_roots(p)
    items = {}
    for dataset, split in VAL_SPLITS.items():
        tax = taxset.dataset(dataset)
        planned = get_reader(tax.format).plan(tax, roots[dataset], split)
        items[dataset] = [item for _, item in zip(range(per_dataset), planned)]
    return items
