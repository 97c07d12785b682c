"""`ssiw train CONFIG --check`: a config is validated in seconds without training; what is not built
yet is listed without failing; a real error fails naming the field (issue #19)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table
from typer.testing import CliRunner

from pipeline.cli import app
from trainer.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIGS = sorted((ROOT / "trainer" / "configs").glob("*.yaml"))


def check(config: Path):
    return CliRunner().invoke(app, ["train", str(config), "--check"], catch_exceptions=False)


def write(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def shipped_with(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((ROOT / "trainer" / "configs" / "example.yaml").read_text())
    raw.update(changes)
    return write(tmp_path, **raw)


def test_there_are_shipped_configs_and_a_cpu_one():
    assert {p.name for p in SHIPPED_CONFIGS} >= {"example.yaml", "hrnet-paper.yaml", "tiny-cpu.yaml"}


@pytest.mark.parametrize("config", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_checks(config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing built here: every input is listed as not built yet
    result = check(config)
    assert result.exit_code == 0, result.output
    assert f"{config}: valid" in result.output
    assert "not yet  shards" in result.output and "not yet  table" in result.output


def test_a_dataset_name_typo_fails_with_a_suggestion(tmp_path: Path):
    datasets = [{"name": "ade20k-150", "split": "training"}, {"name": "mapillary-vistas-v2", "split": "training"}]
    result = check(shipped_with(tmp_path, datasets=datasets))
    assert result.exit_code == 1
    assert "datasets[1].name: no taxonomy named 'mapillary-vistas-v2'; did you mean 'mapillary-vistas-v2.0'" \
        in result.output.replace("\n", "")


def test_a_split_the_taxonomy_lacks_fails_listing_its_splits(tmp_path: Path):
    result = check(shipped_with(tmp_path, datasets=[{"name": "ade20k-150", "split": "train"}]))
    assert result.exit_code == 1
    assert "datasets[0].split: 'train' is not a split of ade20k-150 (it has: training, validation)" \
        in result.output.replace("\n", "")


def test_a_bad_field_fails_naming_it(tmp_path: Path):
    result = check(shipped_with(tmp_path, batch_size=0))
    assert result.exit_code == 1 and "batch_size" in result.output


@pytest.mark.parametrize("weights, said", [(None, "is null"), ("absent", "is missing")])
def test_a_silent_random_backbone_is_refused_with_how_to_get_weights(tmp_path: Path, weights, said):
    raw = yaml.safe_load((ROOT / "trainer" / "configs" / "example.yaml").read_text())
    if weights == "absent":
        del raw["weights"]
    else:
        raw["weights"] = weights
    result = check(write(tmp_path, **raw))
    assert result.exit_code == 1
    out = result.output.replace("\n", "")
    assert f"weights: {said} for model 'segformer-b5'" in out
    assert "huggingface-cli download nvidia/mit-b5" in out and "weights: random" in out


def test_weights_random_is_an_explicit_random_backbone(tmp_path: Path):
    cfg = load_config(shipped_with(tmp_path, weights="random"))
    assert cfg.weights == "random" and cfg.backbone_weights is None
    result = check(shipped_with(tmp_path, weights="random"))
    assert result.exit_code == 0 and "weights: random" in result.output


def test_a_built_run_checks_clean_and_table_gaps_are_named(tmp_path: Path):
    shards = tmp_path / "shards"
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=4, split="train"))
    write_synthetic_dataset(shards, SyntheticSpec("b", samples=4, split="train"))
    table = write_tiny_table(tmp_path / "table.parquet", tiny_table({"a": 4}))
    config = write(tmp_path, shards=str(shards), table=str(table), model="tiny",
                   datasets=[{"name": "a", "split": "train"}, {"name": "b", "split": "train"}])
    result = check(config)
    out = result.output.replace("\n", "")
    assert result.exit_code == 1  # "b": no taxonomy and no table rows
    assert "datasets[1].name: no taxonomy named 'b'" in out
    config = write(tmp_path, shards=str(shards), table=str(table), model="tiny",
                   datasets=[{"name": "a", "split": "train"}])
    result = check(config)
    assert result.exit_code == 0, result.output
    assert "ok       shards a/train: 2 tar(s)" in result.output and "not yet" not in result.output


def test_an_init_run_whose_embeddings_differ_from_the_table_fails_naming_init(tmp_path: Path):
    from trainer.config import TrainConfig
    from trainer.train import run_training

    shards = tmp_path / "shards"
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=4, split="train", size=(40, 40)))
    first = TrainConfig(out_dir=tmp_path / "runs", name="r", shards=shards, datasets=[{"name": "a", "split": "train"}],
                        model="tiny", short_edge=40, crop=(32, 32), batch_size=2, steps=1, epoch_samples=2, workers=0,
                        checkpoint_every=1, shuffle_buffer=2)
    run_training(first, table=tiny_table({"a": 4}, dim=16), progress=False)
    table = write_tiny_table(tmp_path / "t8.parquet", tiny_table({"a": 4}, dim=8))
    config = write(tmp_path, shards=str(shards), table=str(table), model="tiny", init=str(first.run_dir),
                   datasets=[{"name": "a", "split": "train"}])
    result = check(config)
    assert result.exit_code == 1
    assert f"init: {first.run_dir} outputs 16-d embeddings but the table's are 8-d" in result.output.replace("\n", "")
