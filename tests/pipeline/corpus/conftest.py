"""The corpus tests' data: the demo's five datasets, small, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.corpus_recipes import SMALL

from pipeline.demo.corpus import write_corpus


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """<folder>/data/<dataset> and <folder>/taxonomies; read only (a test that breaks files copies them)."""
    folder = tmp_path_factory.mktemp("corpus-data")
    write_corpus(folder, SMALL, seed=4)
    return folder


@pytest.fixture(scope="session")
def built(demo_data, tmp_path_factory):
    """`ssiw corpus build --no-ray` of a dense, a coarse and a box dataset; (recipe, out, command output). Read only."""
    from support.corpus_recipes import write_recipe
    from typer.testing import CliRunner

    from pipeline.cli import app

    folder = tmp_path_factory.mktemp("corpus-built")
    recipe = write_recipe(folder / "recipe.yaml", demo_data, folder / "shards", folder / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-openimages"}, {"name": "demo-objects365", "splits": ["train"]}])
    result = CliRunner().invoke(app, ["corpus", "build", str(recipe), "--no-ray"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return recipe, folder / "shards", result.output
