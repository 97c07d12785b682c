"""A training config that names a built corpus (`corpus: PATH/corpus.json`) instead of listing shards,
table and datasets again; `ssiw train --check` compares what it lists with the corpus (issue #22)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.recipe import dataset_hash, load_recipe
from pipeline.corpus.summary import CorpusSummary, DatasetSummary, SplitSummary
from trainer.config import TrainConfig, load_config


def _split(samples: int) -> SplitSummary:
    return SplitSummary(samples=samples, shards=1, bytes=1000, labels_seen=3)


def _dataset(name: str, splits: dict[str, int], role: str = "train", hash_: str = "h") -> DatasetSummary:
    return DatasetSummary(name=name, supervision="dense", role=role, root=f"/data/{name}", classes=4,
                          dataset_hash=hash_, splits={s: _split(n) for s, n in splits.items()})


def write_corpus(tmp_path: Path, **changes) -> Path:
    """A corpus.json as `ssiw corpus build` writes it: two training sets (one with its validation split
    built too) and one evaluation set."""
    shards = tmp_path / "shards"
    table = write_tiny_table(tmp_path / "cache" / "minilm-sentence.parquet", tiny_table({"a": 4, "b": 4}))
    fields = {
        "name": "c", "recipe": str(tmp_path / "recipe.yaml"), "recipe_hash": "r", "code_version": "0.1.0",
        "built_at": "2026-12-04T00:00:00Z", "shards": str(shards), "cache": str(tmp_path / "cache"), "taxonomies": [],
        "encoder": "synthetic", "tables": {"word": str(tmp_path / "w.parquet"), "sentence": str(table)},
        "datasets": {"a": _dataset("a", {"validation": 5, "training": 8}), "b": _dataset("b", {"train": 8}),
                  "e": _dataset("e", {"val": 4}, role="eval")},
    }
    fields.update(changes)
    path = shards / "corpus.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CorpusSummary(**fields).model_dump_json(indent=2))
    return path


def write_config(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"model": "tiny", **fields}))
    return path


def check(config: Path):
    return CliRunner().invoke(app, ["train", str(config), "--check"], catch_exceptions=False)


def test_a_config_naming_a_corpus_takes_its_shards_table_and_training_datasets(tmp_path: Path):
    corpus = write_corpus(tmp_path)
    cfg = load_config(write_config(tmp_path, corpus=str(corpus)))
    assert cfg.shards == str(tmp_path / "shards")
    assert cfg.table == tmp_path / "cache" / "minilm-sentence.parquet"  # sentence, though word is listed first
    # Training sets on their first "train*" split, the evaluation set left out, equal ratios.
    assert [(d.name, d.split, d.ratio) for d in cfg.datasets] == [("a", "training", 1.0), ("b", "train", 1.0)]
    # The folder holding corpus.json names it too.
    assert load_config(write_config(tmp_path, corpus=str(corpus.parent))).datasets == cfg.datasets


def test_fields_the_config_gives_win_over_the_corpus(tmp_path: Path):
    corpus = write_corpus(tmp_path)
    cfg = load_config(write_config(tmp_path, corpus=str(corpus), datasets=[{"name": "b", "split": "train",
                                                                             "ratio": 2.0}]))
    assert [(d.name, d.ratio) for d in cfg.datasets] == [("b", 2.0)]


def test_a_resolved_config_no_longer_needs_the_corpus_file(tmp_path: Path):
    """Ray workers and checkpoints re-validate the saved config; the corpus.json need not be on their node."""
    corpus = write_corpus(tmp_path)
    cfg = load_config(write_config(tmp_path, corpus=str(corpus)))
    saved = cfg.model_dump_json()
    corpus.unlink()
    again = TrainConfig.model_validate_json(saved)
    assert again.datasets == cfg.datasets and again.corpus == str(corpus)


def test_a_missing_corpus_is_named(tmp_path: Path):
    result = check(write_config(tmp_path, corpus=str(tmp_path / "nowhere" / "corpus.json")))
    assert result.exit_code == 1
    assert "no corpus.json here" in result.output.replace("\n", "") and "ssiw corpus build" in result.output


def test_check_names_what_the_config_lists_beyond_the_corpus(tmp_path: Path):
    corpus = write_corpus(tmp_path)
    write_synthetic_dataset(tmp_path / "elsewhere", SyntheticSpec("a", samples=2, split="training"))
    config = write_config(tmp_path, corpus=str(corpus), shards=str(tmp_path / "elsewhere"), datasets=[
        {"name": "a", "split": "train"}, {"name": "bb", "split": "train"}, {"name": "b", "split": "train",
                                                                            "max_samples": 100}])
    out = check(config).output.replace("\n", "")
    assert f"shards: {tmp_path / 'elsewhere'}, but the corpus's shards are at {tmp_path / 'shards'}" in out
    assert "datasets[0].split: the corpus built a as validation, training, not 'train'" in out
    assert "datasets[1].name: 'bb' is not in the corpus" in out and "did you mean 'b'" in out
    assert "datasets[2].max_samples: 100 but the corpus holds 8 samples of b/train: all are used" in out


def test_check_refuses_a_table_from_another_encoder(tmp_path: Path):
    corpus = write_corpus(tmp_path, encoder="open_clip:ViT-B-32")
    result = check(write_config(tmp_path, corpus=str(corpus)))
    assert result.exit_code == 1
    out = result.output.replace("\n", "")
    assert "table: encoded with synthetic, but the corpus was embedded with open_clip:ViT-B-32" in out


def test_check_says_when_the_recipe_changed_since_the_build(tmp_path: Path):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({"name": "c", "out": "shards", "data_root": "data",
                                           "datasets": [{"name": "a"}, {"name": "b"}]}))
    recipe = load_recipe(recipe_path)
    hashes = {e.name: dataset_hash(recipe, e) for e in recipe.datasets}
    built = json.loads(write_corpus(tmp_path).read_text())
    for name in ("a", "b"):
        built["datasets"][name]["dataset_hash"] = hashes[name]
    corpus = tmp_path / "shards" / "corpus.json"
    corpus.write_text(json.dumps(built))
    result = check(write_config(tmp_path, corpus=str(corpus)))
    assert result.exit_code == 0, result.output  # shards not converted yet are listed, not failed
    out = result.output.replace("\n", "")
    assert "changed since" not in out and "2 datasets" not in out and "3 datasets, 25 samples" in out
    recipe_path.write_text(yaml.safe_dump({"name": "c", "out": "shards", "data_root": "data", "datasets": [
        {"name": "a"}, {"name": "b", "max_samples": 5}, {"name": "n"}]}))
    out = check(write_config(tmp_path, corpus=str(corpus))).output.replace("\n", "")
    assert "corpus: b changed since the corpus was built" in out
    assert "corpus: n is not in the corpus yet" in out
    assert "corpus: a " not in out
