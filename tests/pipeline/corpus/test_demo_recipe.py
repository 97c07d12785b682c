"""The demo's corpus as a recipe (taxonomies/corpora/demo.yaml): run as shipped from the folder `make demo`
runs in, `ssiw corpus build` writes the very shards `ssiw convert --all --roots` wrote for the demo (#22)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.recipe import load_recipe
from pipeline.corpus.summary import read_summary
from pipeline.demo.corpus import CorpusSize, taxonomies, write_corpus
from pipeline.demo.layout import DEMO_RECIPE, RECIPE_OUT, Paths
from pipeline.demo.run import recipe_overrides


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_the_recipe_names_the_demo_corpus():
    recipe = load_recipe(DEMO_RECIPE)
    assert [d.name for d in recipe.datasets] == list(taxonomies())
    assert (recipe.data_root, recipe.out, recipe.cache, recipe.taxonomies) == \
        ("demo-out/data", "demo-out/shards", "demo-out/cache", ["demo-out/taxonomies"])
    assert recipe.offline and recipe.embed.encoder == "minilm" and recipe.embed.modes == ["sentence", "word"]
    assert not any(d.capped for d in recipe.datasets)


def test_the_demo_passes_its_own_folders_only_when_they_are_not_the_recipes():
    assert recipe_overrides(Paths(Path(RECIPE_OUT))) == []
    other = Paths(Path("/tmp/elsewhere"))
    assert recipe_overrides(other) == ["--data-root", other.out / "data", "--out", other.shards, "--cache", other.cache,
                                       "--taxonomies", other.taxonomies]


def test_the_recipe_builds_the_shards_the_demo_converted_before(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(Path(RECIPE_OUT), CorpusSize(train=6, val=3, image_size=64), seed=0)
    reference = tmp_path / "converted"
    result = invoke("convert", "--all", "--roots", "demo-out/roots.yaml", "--out", reference,
                    "--taxonomies", "demo-out/taxonomies", "--no-ray")
    assert result.exit_code == 0, result.output
    result = invoke("corpus", "build", DEMO_RECIPE, "--no-ray")
    assert result.exit_code == 0, result.output
    built = tmp_path / "demo-out" / "shards"
    tars = sorted(p.relative_to(reference) for p in reference.rglob("*.tar"))
    assert len(tars) == 9  # five datasets, nine splits, one shard each
    assert sorted(p.relative_to(built) for p in built.rglob("*.tar")) == tars
    for tar in tars:
        assert (built / tar).read_bytes() == (reference / tar).read_bytes(), tar
    for manifest in sorted(reference.glob("*/*.manifest.parquet")):
        assert pl.read_parquet(built / manifest.relative_to(reference)).equals(pl.read_parquet(manifest))
    summary = read_summary(built)
    assert list(summary.datasets) == list(taxonomies())
    assert (built / "corpus.html").is_file()
    assert set(summary.tables) == {"sentence", "word"} and all(Path(t).is_file() for t in summary.tables.values())
