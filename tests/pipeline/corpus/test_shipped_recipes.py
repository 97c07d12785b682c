"""The shipped corpus recipes (taxonomies/corpora/): valid, resolvable against the shipped taxonomies, with
cited release facts for every split they use; the paper's recipe matches the paper's training config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.corpus.check import expand_parts
from pipeline.corpus.recipe import load_recipe
from pipeline.corpus.resolve import resolve
from pipeline.paths import REPO_ROOT, shipped_recipe_dir
from pipeline.taxonomy.load import dataset_paths

RECIPES = sorted(shipped_recipe_dir().glob("*.yaml"))
PAPER_CONFIG = REPO_ROOT / "trainer" / "configs" / "ssiw-paper.yaml"


def test_the_paper_recipe_is_shipped():
    assert shipped_recipe_dir() / "ssiw-paper.yaml" in ON_SHIPPED


# Recipes on the shipped taxonomies alone; one that layers its own folders (the demo's, made when the
# demo runs) is resolved by its own tests.
ON_SHIPPED = [p for p in RECIPES if not load_recipe(p).taxonomies]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(path: Path):
    assert load_recipe(path).name == path.stem


@pytest.mark.parametrize("path", ON_SHIPPED, ids=lambda p: p.stem)
def test_recipe_resolves_against_the_shipped_taxonomies(path: Path, shipped_taxonomies):
    recipe = load_recipe(path)
    resolved = resolve(recipe, shipped_taxonomies, str(path))
    assert [d.entry.name for d in resolved] == [d.name for d in recipe.datasets]


@pytest.mark.parametrize("path", ON_SHIPPED, ids=lambda p: p.stem)
def test_every_release_is_cited_and_counts_the_splits_used(path: Path, shipped_taxonomies):
    for ds in resolve(load_recipe(path), shipped_taxonomies, str(path)):
        release = ds.entry.release
        if release is None:
            continue
        assert release.source.strip(), ds.entry.name
        assert set(release.images) <= set(ds.taxonomy.splits), ds.entry.name
        assert set(release.parts) <= set(ds.taxonomy.splits), ds.entry.name
        for split in ds.splits:
            assert release.images.get(split, 0) > 0, f"{ds.entry.name}/{split}: no official count"


def test_every_paper_dataset_has_release_facts():
    recipe = load_recipe(shipped_recipe_dir() / "ssiw-paper.yaml")
    assert all(d.release is not None for d in recipe.datasets)


def test_the_taxonomy_loader_does_not_read_the_recipes(shipped_taxonomies):
    folder = shipped_recipe_dir().parent
    assert not any(p.parent != folder for p in dataset_paths(folder))
    recipe_names = {load_recipe(p).name for p in RECIPES}
    assert not recipe_names & set(shipped_taxonomies.datasets)


def test_paper_recipe_matches_the_paper_training_config():
    """The same nine datasets, each with the split the config trains on and the same seeded caps."""
    recipe = load_recipe(shipped_recipe_dir() / "ssiw-paper.yaml")
    config = yaml.safe_load(PAPER_CONFIG.read_text())
    entries = {d.name: d for d in recipe.datasets}
    assert list(entries) == [d["name"] for d in config["datasets"]]
    for d in config["datasets"]:
        entry = entries[d["name"]]
        assert d["split"] in entry.splits, d["name"]
        assert entry.max_samples == d.get("max_samples"), d["name"]
    assert recipe.embed.encoder == "open_clip:ViT-B-32:openai"  # the config's table comes from this encoder
    assert recipe.embed.encoder.replace(":", "-") in config["table"]
    assert recipe.convert.box_embeddings == "open_clip:ViT-B-32:openai"  # box_targets: image needs them


def test_paper_recipe_parts_are_the_releases_archives():
    recipe = load_recipe(shipped_recipe_dir() / "ssiw-paper.yaml")
    entries = {d.name: d for d in recipe.datasets}
    o365 = entries["objects365-v2"].release
    assert expand_parts(o365.parts["train"]) == [f"train/patch{n}" for n in range(51)]
    assert expand_parts(o365.parts["val"]) == [f"val/patch{n}" for n in range(44)]
    masks = expand_parts(entries["openimages-v6-seg"].release.parts["train"])
    assert masks == [f"train-masks/{c}*.png" for c in "0123456789abcdef"]  # train-masks-0.zip .. -f.zip
