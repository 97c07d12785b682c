"""`ssiw eval` and `ssiw segment` name classes from the taxonomies they find (the command's, else the
run's own) and the checkpoint's record, never `class N`; a missing split lists those that exist (issue #19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.synthetic import SyntheticSpec, TinyTable, tiny_table, write_synthetic_dataset
from typer.testing import CliRunner

from pipeline.cli import app
from trainer.config import TrainConfig
from trainer.train import run_training

NAMES = ["background", "sky", "road", "tree"]  # as the dataset spells its classes
LABELS = ["building", "sky", "road", "tree"]  # the registry labels they mean


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step run on synthetic shards of dataset 'a', trained with a user taxonomy folder naming its classes."""
    tmp = tmp_path_factory.mktemp("names")
    shards = tmp / "shards"
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=6, size=(40, 40)))
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=2, size=(40, 40), seed=9, split="validation", shards=1))
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "a.yaml").write_text(yaml.safe_dump({
        "name": "a", "version": "1", "homepage": "https://example.org", "format": "png_folder",
        "supervision": "dense", "splits": {"training": {"images": "i", "annotations": "l"}},
        "classes": [{"name": n, "label": k, "raw_id": i} for i, (n, k) in enumerate(zip(NAMES, LABELS))],
    }))
    cfg = TrainConfig(out_dir=tmp / "runs", name="r", shards=shards, datasets=[{"name": "a"}], taxonomies=mine,
                      model="tiny", short_edge=40, crop=(32, 32), batch_size=2, steps=2, epoch_samples=4, workers=0,
                      checkpoint_every=2, shuffle_buffer=4)
    table = tiny_table({"a": 4})
    run_training(cfg, table=TinyTable(LABELS, table.vectors, table.lookup), progress=False)
    return cfg.run_dir, shards, mine


def evaluate(run_dir: Path, shards: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["eval", str(run_dir), "--dataset", "a", "--shards", str(shards),
                                    "--multi-scales", "", "--out", str(out), *extra], catch_exceptions=False)


def test_eval_without_taxonomies_reads_the_runs_own_folder(run, tmp_path: Path):
    run_dir, shards, _ = run
    result = evaluate(run_dir, shards, tmp_path / "eval")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert list(results["single_scale"]["per_class"]) == NAMES
    assert "does not record" not in result.output and "labels seen in training (4)" in result.output


def test_without_any_taxonomy_the_checkpoints_record_names_the_classes(run, tmp_path: Path):
    run_dir, shards, mine = run
    moved = mine.rename(mine.with_name("moved"))  # the run's taxonomy folder is gone
    try:
        result = evaluate(run_dir, shards, tmp_path / "eval")
    finally:
        moved.rename(mine)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert list(results["single_scale"]["per_class"]) == LABELS  # the labels it trained on
    assert "class 0" not in result.output and "labels seen in training (4)" in result.output


def test_a_missing_split_lists_the_splits_that_exist(run, tmp_path: Path):
    run_dir, shards, _ = run
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--dataset", "a", "--shards", str(shards),
                                      "--split", "val"])
    assert result.exit_code == 1
    assert "a has: training, validation" in result.output.replace("\n", "")


def test_segment_names_the_dataset_classes_from_the_runs_taxonomies(run, tmp_path: Path):
    from PIL import Image

    run_dir, _, _ = run
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "photo.png")
    result = CliRunner().invoke(app, ["segment", str(run_dir), str(tmp_path / "photo.png"), "--dataset", "a",
                                      "--out", str(tmp_path / "seg")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    shown = result.output.split("(", 1)[1]  # "<image>: <overlay> (classes present, by name)"
    assert any(name in shown for name in NAMES) and "class " not in shown
