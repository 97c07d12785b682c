"""Training end to end on tiny synthetic shards: overfitting, resume, two-process DDP, eval and segment."""

import csv
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from typer.testing import CliRunner

from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset
from trainer.config import TrainConfig, load_config
from trainer.predict.evaluate import evaluate_checkpoint, samples_from_shards
from trainer.train import run_training

TABLE_SIZES = {"a": 4, "b": 4, "c": 4}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(root, SyntheticSpec("a", samples=8, size=(40, 40)))
    write_synthetic_dataset(root, SyntheticSpec("b", samples=8, size=(40, 40), supervision="coarse", seed=1))
    write_synthetic_dataset(root, SyntheticSpec("c", samples=8, size=(40, 40), supervision="box", seed=2))
    write_synthetic_dataset(root, SyntheticSpec("a", samples=4, size=(40, 40), seed=9, split="validation", shards=1))
    return root


def _config(shard_dir, out, **kw):
    base = {"out_dir": out, "shards": shard_dir, "datasets": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "model": "tiny", "short_edge": 40, "crop": (32, 32), "scale": (0.8, 1.2), "batch_size": 3, "steps": 40,
            "epoch_samples": 30, "lr": 1e-2, "workers": 0, "checkpoint_every": 20, "shuffle_buffer": 8}
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_model_overfits_mixed_shards(shard_dir, tmp_path):
    cfg = _config(shard_dir, tmp_path, steps=60, checkpoint_every=60)
    summary = run_training(cfg, table=tiny_table(TABLE_SIZES), progress=False)
    hist = summary["history"]
    first = np.mean([h["total"] for h in hist[:5]])
    last = np.mean([h["total"] for h in hist[-5:]])
    assert last < 0.5 * first
    assert {"hd", "ld", "wd"} <= set(hist[-1])
    with open(cfg.run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and float(rows[-1]["total"]) == pytest.approx(hist[-1]["total"], rel=1e-4)
    assert any((cfg.run_dir / "tb").iterdir())
    ckpt = cfg.run_dir / "checkpoints" / "step-0000060.pt"
    results = evaluate_checkpoint(ckpt, "a", samples_from_shards(shard_dir, "a", "training", None), multi_scales=[32, 48])
    print("train mIoU", results["single_scale"]["miou"], results["multi_scale"]["miou"])
    assert results["single_scale"]["miou"] > 0.6
    assert results["multi_scale"]["miou"] > 0.5


def test_resume_gives_the_same_next_step(shard_dir, tmp_path):
    table = tiny_table(TABLE_SIZES)
    # epoch of 4 micro-batches, 2 accumulated per step: step 3 starts mid-epoch.
    cfg = _config(shard_dir, tmp_path, name="full", steps=4, epoch_samples=12, accumulate=2, checkpoint_every=1)
    full = run_training(cfg, table=table, progress=False)
    resumed_cfg = cfg.model_copy(update={"name": "resumed"})
    resumed = run_training(resumed_cfg, table=table, resume=cfg.run_dir / "checkpoints" / "step-0000002.pt",
                           progress=False)
    assert [h["step"] for h in resumed["history"]] == [3, 4]
    for a, b in zip(full["history"][2:], resumed["history"]):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)
    sa = torch.load(cfg.run_dir / "checkpoints" / "step-0000004.pt", weights_only=True)["model"]
    sb = torch.load(resumed_cfg.run_dir / "checkpoints" / "step-0000004.pt", weights_only=True)["model"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k])


def _ddp_worker(rank, world, port, cfg_json, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = TrainConfig.model_validate_json(cfg_json)
    from trainer.train import run_training as train

    summary = train(cfg, table=tiny_table(TABLE_SIZES), progress=False)
    import torch.distributed as dist

    dist.destroy_process_group()
    np.save(os.path.join(result_dir, f"rank{rank}.npy"), np.array([h["total"] for h in summary["history"]]))
    params = torch.cat([p.detach().flatten() for p in summary["model"].parameters()]).numpy()
    np.save(os.path.join(result_dir, f"params{rank}.npy"), params)


def test_two_process_ddp_with_gloo(shard_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # device: cpu, so the two processes run on gloo even where a GPU (or only one) exists.
    cfg = _config(shard_dir, tmp_path, steps=3, checkpoint_every=3, device="cpu")
    mp.spawn(_ddp_worker, args=(2, port, cfg.model_dump_json(), str(tmp_path)), nprocs=2, join=True)
    losses = [np.load(tmp_path / f"rank{r}.npy") for r in range(2)]
    assert all(len(x) == 3 for x in losses)
    assert not np.allclose(losses[0], losses[1])  # each rank saw its own batches
    p0, p1 = np.load(tmp_path / "params0.npy"), np.load(tmp_path / "params1.npy")
    np.testing.assert_allclose(p0, p1, rtol=1e-6, atol=1e-7)  # gradients were averaged across ranks
    state = torch.load(cfg.run_dir / "checkpoints" / "step-0000003.pt", weights_only=True)
    assert state["step"] == 3 and not (cfg.run_dir / "checkpoints" / "step-0000003.pt.tmp").exists()


def test_config_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("shards: s\ndatasets: []\nbatch_size: 0\n")
    with pytest.raises(ValueError, match="bad.yaml.*datasets.*batch_size"):
        load_config(path)
    example = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "trainer", "configs", "example.yaml"))
    assert example.model == "segformer-b5" and example.lr == pytest.approx(6e-5)


def test_eval_and_segment_commands(shard_dir, tmp_path):
    from pipeline.cli import app

    cfg = _config(shard_dir, tmp_path, steps=2, checkpoint_every=2)
    run_training(cfg, table=tiny_table(TABLE_SIZES), progress=False)
    ckpt = cfg.run_dir / "checkpoints" / "step-0000002.pt"
    runner = CliRunner()
    out = tmp_path / "eval"
    res = runner.invoke(app, ["eval", str(ckpt), "--dataset", "a", "--shards", str(shard_dir), "--multi-scales",
                              "32,40", "--sliding", "--out", str(out)])
    assert res.exit_code == 0, res.output
    import json

    results = json.loads((out / "results.json").read_text())
    # Named by the labels the run recorded for "a" (it has no taxonomy), never "class N" (issue #19).
    assert results["images"] == 4 and set(results["multi_scale"]["per_class"]) == {f"class_{i}" for i in range(4)}
    assert (out / "per_class_iou.png").stat().st_size > 1000

    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(image)
    res = runner.invoke(app, ["segment", str(ckpt), str(image), "--dataset", "a", "--out", str(tmp_path / "seg")])
    assert res.exit_code == 0, res.output
    label = np.asarray(Image.open(tmp_path / "seg" / "img.label.png"))
    assert label.shape == (30, 40) and label.max() < 4
    assert Image.open(tmp_path / "seg" / "img.overlay.png").size[0] > 40  # legend beside the image
    # --label texts go through pipeline.embed.adhoc, which refuses an empty description before loading anything.
    res = runner.invoke(app, ["segment", str(ckpt), str(image), "--label", "wall:", "--out", str(tmp_path / "adhoc")])
    assert res.exit_code == 1 and "description after the colon is empty" in res.output

    res = runner.invoke(app, ["eval", str(ckpt), "--dataset", "zzz", "--shards", str(shard_dir)])
    assert res.exit_code == 1 and "zzz" in res.output


def _yaml_config(shard_dir, tmp_path, table_path):
    import yaml

    from tests.support.synthetic import write_tiny_table

    write_tiny_table(table_path, tiny_table({"a": 4}))
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({
        "name": "cli", "out_dir": str(tmp_path / "runs"), "shards": str(shard_dir), "datasets": [{"name": "a"}],
        "table": str(table_path), "model": "tiny", "short_edge": 40, "crop": [32, 32], "batch_size": 2, "steps": 3,
        "epoch_samples": 8, "workers": 0, "checkpoint_every": 2,
    }))
    return path


def test_train_command_with_a_table_file_and_resume(shard_dir, tmp_path):
    from pipeline.cli import app

    config = _yaml_config(shard_dir, tmp_path, tmp_path / "table.parquet")
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(config)])
    assert res.exit_code == 0, res.output
    ckpts = sorted((tmp_path / "runs" / "cli" / "checkpoints").glob("*.pt"))
    assert [p.name for p in ckpts] == ["step-0000002.pt", "step-0000003.pt"]
    assert torch.load(ckpts[-1], weights_only=True)["label_space"]["encoder"] == "synthetic"
    res = runner.invoke(app, ["train", str(config), "--resume", "auto"])  # already at the last step: no new rows
    assert res.exit_code == 0, res.output
    with open(tmp_path / "runs" / "cli" / "losses.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]


def test_ray_train_runs_the_same_loop(shard_dir, tmp_path, ray_session):
    from trainer.train import run_with_ray

    config = load_config(_yaml_config(shard_dir, tmp_path, tmp_path / "table.parquet"))
    run_with_ray(config, num_workers=1, use_gpu=False)
    state = torch.load(config.run_dir / "checkpoints" / "step-0000003.pt", weights_only=True)
    assert state["step"] == 3


def test_a_process_without_a_gpu_of_its_own_stops_with_a_clear_error():
    """Two processes on a one-GPU node: rank 1 used to die in torch.cuda.set_device (invalid device ordinal)."""
    from pipeline.errors import BadInput
    from trainer.train import pick_device

    with pytest.raises(BadInput, match="2 processes on this node, 1 GPU: the process with LOCAL_RANK=1 has no GPU"):
        pick_device("auto", local_rank=1, gpus=1, local_processes=2)
    assert pick_device("auto", local_rank=0, gpus=1, local_processes=2) == "cuda:0"
    assert pick_device("cpu", local_rank=1, gpus=1, local_processes=2) == "cpu"  # the gloo test's setting
    assert pick_device("auto", local_rank=3, gpus=0, local_processes=4) == "cpu"
