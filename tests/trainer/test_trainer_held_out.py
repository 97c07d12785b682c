"""Held-out labels stay unseen: their pixels are ignored and their boxes dropped in every training
dataset, they leave the softmax, the checkpoint records what it trained on, and `ssiw eval` says
which evaluated labels were seen."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.shards.read import find_shards
from tests.support.synthetic import SyntheticSpec, TinyTable, tiny_table, write_synthetic_dataset
from trainer.config import TrainConfig, load_config
from trainer.data.augment import AugmentParams
from trainer.data.stream import Source, StreamSpec, iterate_batches
from trainer.model.label_space import LabelSpace
from trainer.train import build_label_space, run_training

ROOT = Path(__file__).resolve().parents[2]
SMALL = AugmentParams(short_edge=40, scale=(1.0, 1.0), crop=(40, 40), flip=False, jitter=0, blur_prob=0,
                      box_min_visible=0.0)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(root, SyntheticSpec("a", num_classes=4, samples=12, size=(40, 40)))
    write_synthetic_dataset(root, SyntheticSpec("c", num_classes=4, samples=12, size=(40, 40), supervision="box",
                                                seed=2))
    write_synthetic_dataset(root, SyntheticSpec("a", samples=4, size=(40, 40), seed=9, split="validation", shards=1))
    return root


def test_shipped_unseen_labels_are_training_classes_and_held_out_by_the_example_config():
    """The five YouTube-VIS labels are OpenImages / Objects365 classes: only holding them out keeps them unseen."""
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(None)
    five = taxset.dataset("youtube-vis-unseen").class_labels
    assert sorted(five) == ["deer", "duck", "frog", "lizard", "shark"]
    example = load_config(ROOT / "trainer" / "configs" / "example.yaml")
    assert sorted(example.held_out_labels) == sorted(five)
    names = ["openimages-v6-seg", "objects365-v2", "ade20k-150"]
    labels = sorted({k for n in names for k in taxset.dataset(n).class_labels})
    lookup = {n: [labels.index(k) for k in taxset.dataset(n).class_labels] for n in names}
    vectors = np.random.default_rng(0).standard_normal((len(labels), 8)).astype(np.float32)
    table = TinyTable(labels, vectors, lookup)
    space = LabelSpace.from_table(table, names, five)
    held = {n: [taxset.dataset(n).class_names[i] for i in space.held_out_classes(n)] for n in names}
    # OpenImages lists every boxable class (Deer among them), so all five are OpenImages classes
    assert sorted(held["openimages-v6-seg"]) == ["Deer", "Duck", "Frog", "Lizard", "Shark"]
    assert sorted(held["objects365-v2"]) == ["Deer", "Duck"]
    assert held["ade20k-150"] == []
    assert not set(five) & set(space.trained_labels)
    assert len(space.rows) == len(labels) - 5  # the five left the softmax


def test_held_out_classes_leave_no_trace_in_the_stream(shard_dir):
    table = tiny_table({"a": 4, "c": 4})
    space = LabelSpace.from_table(table, ["a", "c"], ["class_2"])
    assert space.columns["a"].tolist()[2] == -1 and space.held_out_classes("c").tolist() == [2]
    sources = [Source(n, find_shards(shard_dir, n, "training"), rows=space.columns[n],
                      held_out=space.held_out_classes(n)) for n in ("a", "c")]
    seen_pixels, seen_boxes = set(), set()
    for batch in iterate_batches(StreamSpec(sources, batch_size=4, batches=6, augment=SMALL, shuffle_buffer=0)):
        seen_pixels |= set(batch["target"].unique().tolist())
        for classes in batch["box_classes"]:
            seen_boxes |= set(classes.tolist())
    assert 2 not in seen_pixels and {0, 1, 3} <= seen_pixels  # class 2 pixels became ignore (-1)
    assert 2 not in seen_boxes and {1, 3} <= seen_boxes
    # without holding out, the same stream has class 2 in both (so the test can fail)
    plain = [Source(n, find_shards(shard_dir, n, "training")) for n in ("a", "c")]
    batches = list(iterate_batches(StreamSpec(plain, batch_size=4, batches=6, augment=SMALL, shuffle_buffer=0)))
    assert any((b["target"] == 2).any() for b in batches)
    assert any((c == 2).any() for b in batches for c in b["box_classes"])


def test_unknown_held_out_label_is_an_error(shard_dir, tmp_path):
    cfg = TrainConfig(shards=shard_dir, datasets=[{"name": "a"}], held_out_labels=["class_2", "no_such_label"])
    with pytest.raises(ValueError, match=r"held_out_labels: \['no_such_label'\]"):
        build_label_space(cfg, tiny_table({"a": 4}))


def test_checkpoint_records_labels_and_eval_lists_seen_ones(shard_dir, tmp_path):
    from pipeline.cli import app
    from tests.support.synthetic import write_tiny_table

    table = tiny_table({"a": 4, "c": 4})
    cfg = TrainConfig(out_dir=tmp_path, shards=shard_dir, datasets=[{"name": "a"}, {"name": "c"}], model="tiny",
                      short_edge=40, crop=(32, 32), batch_size=2, steps=2, epoch_samples=8, workers=0,
                      checkpoint_every=2, held_out_labels=["class_2"])
    run_training(cfg, table=table, progress=False)
    ckpt = cfg.run_dir / "checkpoints" / "step-0000002.pt"
    ls = torch.load(ckpt, weights_only=True)["label_space"]
    assert ls["trained_labels"] == ["class_0", "class_1", "class_3"] and ls["held_out"] == ["class_2"]
    table_path = write_tiny_table(tmp_path / "table.parquet", table)
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--dataset", "a", "--shards", str(shard_dir),
                                   "--table", str(table_path), "--multi-scales", "", "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    # the classes are named by the labels the run recorded (no taxonomy knows dataset "a")
    assert results["seen_in_training"] == {"class_0": True, "class_1": True, "class_2": False, "class_3": True}
    assert results["held_out_in_training"] == ["class_2"]
    # evaluating a training dataset with held-out classes needs the table (those classes have no vector)
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--dataset", "a", "--shards", str(shard_dir)])
    assert res.exit_code == 1 and "held-out classes" in res.output
