"""Checkpoints are data (issue #21): a file whose unpickling would run code is refused by every entry
point that reads one, and nothing runs; the project's own checkpoints, old and new, still load."""

import os
import shlex

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import BadInput
from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table
from trainer.config import TrainConfig
from trainer.model.checkpoint import RunCheckpoint
from trainer.predict.predictor import Predictor
from trainer.train import run_training

SIZES = {"a": 4}


class RunsShell:
    """Pickles as a call to os.system: what a hostile checkpoint would carry."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    write_synthetic_dataset(root / "shards", SyntheticSpec("a", samples=4, size=(40, 40)))
    table = write_tiny_table(root / "table.parquet", tiny_table(SIZES))
    cfg = TrainConfig(out_dir=root / "runs", name="good", shards=root / "shards", datasets=[{"name": "a"}],
                      table=table, model="tiny", short_edge=40, crop=(32, 32), batch_size=2, steps=2,
                      epoch_samples=4, workers=0, checkpoint_every=2, shuffle_buffer=4)
    run_training(cfg, progress=False)
    return root, cfg


def _hostile_copy(good: os.PathLike, path, marker) -> None:
    """A real checkpoint's contents plus one entry whose unpickling creates `marker`."""
    state = torch.load(good, weights_only=True)
    state["config"]["note"] = RunsShell(f"touch {shlex.quote(str(marker))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def test_a_checkpoint_that_would_run_code_is_refused_everywhere(run, tmp_path):
    root, cfg = run
    good = cfg.run_dir / "checkpoints" / "step-0000002.pt"
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    _hostile_copy(good, evil, marker)
    evil_run = tmp_path / "evil-run"
    _hostile_copy(good, evil_run / "checkpoints" / "step-0000009.pt", marker)
    image = tmp_path / "img.png"
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(image)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**cfg.model_dump(mode="json"), "name": "resumed", "out_dir": str(tmp_path)}))

    commands = {
        "segment CKPT": (["segment", evil, image, "--out", tmp_path / "seg"], evil),
        "segment RUN": (["segment", evil_run, image, "--out", tmp_path / "seg2"],
                        evil_run / "checkpoints" / "step-0000009.pt"),
        "eval": (["eval", evil, "--dataset", "a", "--shards", root / "shards"], evil),
        "pseudo-label": (["pseudo-label", evil, "--dataset", "a", "--shards", root / "shards", "--split", "training",
                          "--out", tmp_path / "pseudo"], evil),
        "train --resume": (["train", config, "--resume", evil], evil),
    }
    for what, (args, named) in commands.items():
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 1, (what, result.output)
        assert f"{named}: refused" in result.output and "posix.system" in result.output, (what, result.output)
        assert not marker.exists(), what
    with pytest.raises(BadInput, match=r"init: .*evil\.pt: refused: .*posix\.system"):
        run_training(cfg.model_copy(update={"name": "tuned", "out_dir": tmp_path, "init": evil}), progress=False)
    assert not marker.exists()


def test_new_checkpoints_are_plain_data(run):
    _, cfg = run
    # No allow-list at all: only tensors and plain values.
    state = torch.load(cfg.run_dir / "checkpoints" / "step-0000002.pt", weights_only=True)
    assert isinstance(state["label_space"]["vectors"], torch.Tensor) and state["label_space"]["encoder"] == "synthetic"
    assert state["config"]["shards"] == str(cfg.shards) and state["step"] == 2


def test_checkpoints_written_before_the_contract_still_load(run, tmp_path):
    """Before, the label space went in as numpy arrays (LabelSpace.to_dict as is)."""
    _, cfg = run
    new = RunCheckpoint.load(cfg.run_dir)
    state = torch.load(cfg.run_dir / "checkpoints" / "step-0000002.pt", weights_only=True)
    state["label_space"] = new.label_space.to_dict()
    assert isinstance(state["label_space"]["vectors"], np.ndarray)
    old = tmp_path / "old" / "checkpoints" / "step-0000002.pt"
    old.parent.mkdir(parents=True)
    torch.save(state, old)

    loaded = RunCheckpoint.load(old.parent.parent)
    np.testing.assert_array_equal(loaded.label_space.vectors, new.label_space.vectors)
    assert loaded.settings.short_edge == 40 and loaded.settings.crop == (32, 32) and loaded.training is not None
    image = np.full((30, 40, 3), 90, np.uint8)
    vectors = loaded.label_space.vectors_for("a")
    np.testing.assert_array_equal(Predictor.from_checkpoint(old).predict(image, vectors, [40]),
                                  Predictor.from_checkpoint(cfg.run_dir).predict(image, vectors, [40]))


def test_saving_refuses_what_could_not_be_read_back(run, tmp_path):
    _, cfg = run
    ckpt = RunCheckpoint.load(cfg.run_dir)
    ckpt.config["callback"] = RunsShell("true")
    with pytest.raises(BadInput, match=r"x\.pt: not saved: checkpoint\.config\.callback: a \S*RunsShell cannot be stored"):
        ckpt.save(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
