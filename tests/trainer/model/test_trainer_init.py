"""`init:` fine-tunes from an ssiw checkpoint: the first step's loss starts below a fresh network's."""

import pytest

from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset
from trainer.config import TrainConfig
from trainer.train import run_training

SIZES = {"a": 4, "b": 4}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(root, SyntheticSpec("a", samples=8, size=(40, 40)))
    write_synthetic_dataset(root, SyntheticSpec("b", samples=8, size=(40, 40), seed=5))
    return root


def _config(shard_dir, out, **kw):
    base = {"out_dir": out, "shards": shard_dir, "datasets": [{"name": "a"}], "model": "tiny", "short_edge": 40,
            "crop": (32, 32), "scale": (0.8, 1.2), "batch_size": 4, "steps": 3, "epoch_samples": 40, "lr": 1e-2,
            "workers": 0, "checkpoint_every": 60, "shuffle_buffer": 8}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def pretrained(shard_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = _config(shard_dir, out, name="pre", steps=60)
    run_training(cfg, table=tiny_table(SIZES), progress=False)
    return cfg.run_dir


def test_fine_tuning_starts_below_a_fresh_network(shard_dir, pretrained, tmp_path):
    table = tiny_table(SIZES)
    b = [{"name": "b"}]  # another dataset whose classes share the table rows of the pretraining ones
    fresh = run_training(_config(shard_dir, tmp_path, name="fresh", datasets=b), table=table, progress=False)
    from_run = run_training(_config(shard_dir, tmp_path, name="tuned", datasets=b, init=pretrained), table=table,
                            progress=False)
    ckpt = pretrained / "checkpoints" / "step-0000060.pt"
    from_file = run_training(_config(shard_dir, tmp_path, name="tuned2", datasets=b, init=ckpt), table=table,
                             progress=False)
    first = [r["history"][0]["total"] for r in (fresh, from_run, from_file)]
    print("first-step loss fresh / init run / init file:", first)
    assert first[1] < 0.7 * first[0]
    assert first[2] == pytest.approx(first[1], rel=1e-5)
    assert from_run["step"] == 3  # a new run: step, schedule and optimizer start at zero


def test_init_refuses_a_network_that_does_not_fit(shard_dir, pretrained, tmp_path):
    with pytest.raises(ValueError, match="16-d.*8-d"):
        run_training(_config(shard_dir, tmp_path, name="x", init=pretrained), table=tiny_table(SIZES, dim=8),
                     progress=False)
    with pytest.raises(ValueError, match="'tiny' network but the config's model is 'resnet18'"):
        run_training(_config(shard_dir, tmp_path, name="y", init=pretrained, model="resnet18"),
                     table=tiny_table(SIZES), progress=False)
    with pytest.raises(FileNotFoundError, match="init: .*nowhere"):
        run_training(_config(shard_dir, tmp_path, name="z", init=tmp_path / "nowhere.pt"), table=tiny_table(SIZES),
                     progress=False)


def test_weights_points_to_init_for_an_ssiw_checkpoint(shard_dir, pretrained, tmp_path):
    ckpt = pretrained / "checkpoints" / "step-0000060.pt"
    with pytest.raises(ValueError, match="use `init:` instead of `weights:`"):
        run_training(_config(shard_dir, tmp_path, name="w", model="resnet18", weights=ckpt), table=tiny_table(SIZES),
                     progress=False)
    with pytest.raises(ValueError, match="not both"):
        _config(shard_dir, tmp_path, init=ckpt, weights=ckpt)
