"""Training on machines that share nothing but what they are told to share: two torchrun "nodes" (gloo on
127.0.0.1), the second in its own mount namespace where the run folder is an empty tmpfs; `resampled:
false` with too few shards; `ssiw train --ray` with a config of relative paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.cluster import free_port, hidden_mount_command, needs_root, stop_group
from support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table

from pipeline.errors import BadInput
from trainer.config import TrainConfig, load_config
from trainer.train import run_training

REPO = Path(__file__).resolve().parents[2]
TABLE = {"a": 4}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(root, SyntheticSpec("a", samples=8, size=(40, 40), shards=2))
    return root


def config(shards: Path, out: Path, table: Path, **kw) -> dict:
    base = {"name": "run", "out_dir": str(out), "shards": str(shards), "datasets": [{"name": "a"}],
            "table": str(table), "model": "tiny", "short_edge": 40, "crop": [32, 32], "batch_size": 2, "steps": 4,
            "epoch_samples": 8, "workers": 0, "checkpoint_every": 2, "amp": False}
    base.update(kw)
    return base


@needs_root
def test_resume_auto_with_an_unshared_run_folder_stops_every_rank_naming_both_views(shards, tmp_path):
    table = write_tiny_table(tmp_path / "table.parquet", tiny_table(TABLE))
    out = tmp_path / "runs"
    first = config(shards, out, table, steps=2)
    run_training(load_config(_write(tmp_path / "first.yaml", first)), progress=False)  # rank 0's disk: step 2
    assert (out / "run" / "checkpoints" / "step-0000002.pt").exists()
    cfg = _write(tmp_path / "train.yaml", config(shards, out, table))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "pipeline", "train", str(cfg), "--resume", "auto"]
        if node == 1:  # the second machine cannot see the first one's run folder
            cmd = hidden_mount_command([out], cmd)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True, cwd=REPO))
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=150)[0])
    except subprocess.TimeoutExpired:
        pytest.fail("the ranks hung instead of stopping at start")
    finally:
        for p in procs:
            stop_group(p.pid)
    for p, text in zip(procs, outputs):
        assert p.returncode != 0, text[-3000:]
        assert "the ranks do not agree on where to start" in text, text[-3000:]
        assert "step-0000002.pt" in text and "rank 1 on" in text and "no checkpoint (a fresh start)" in text


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_resampled_false_with_fewer_shards_than_readers_stops_at_start_with_the_numbers(shards, tmp_path):
    cfg = TrainConfig(**{**config(shards, tmp_path / "runs", tmp_path / "t.parquet"), "resampled": False,
                         "workers": 3, "table": None})
    with pytest.raises(BadInput) as err:
        run_training(cfg, table=tiny_table(TABLE), progress=False)
    message = str(err.value)
    assert "1 ranks x 3 workers = 3 shards" in message
    assert "a: 2 shards" in message and "for 3 readers" in message and "--shard-size" in message


def test_ray_train_resolves_relative_paths_in_the_driver_and_writes_to_out_dir(shards, tmp_path, ray_session,
                                                                              monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    write_tiny_table(tmp_path / "table.parquet", tiny_table(TABLE))
    (tmp_path / "shards").symlink_to(shards)
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "train.yaml", config(Path("shards"), Path("runs"), Path("table.parquet"), steps=2))
    res = CliRunner().invoke(app, ["train", "train.yaml", "--ray"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "run" / "checkpoints" / "step-0000002.pt").is_file()


def test_a_silent_rank_stops_the_others_within_the_configured_timeout(shards, tmp_path):
    """Node 1 hangs (SIGSTOP, no connection reset) mid-run: rank 0 stops within dist_timeout_s, not after
    torch's 30-minute default."""
    import re
    import time

    from support.cluster import hang, signal_tree

    table = write_tiny_table(tmp_path / "table.parquet", tiny_table(TABLE))
    out = tmp_path / "runs"
    cfg = _write(tmp_path / "train.yaml", config(shards, out, table, steps=100_000, checkpoint_every=100_000,
                                                 dist_timeout_s=10))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node",
         "1", "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "pipeline", "train", str(cfg)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=REPO)
        for node in (0, 1)]
    stopped = []
    try:
        losses = out / "run" / "losses.csv"
        deadline = time.time() + 120
        while not (losses.exists() and len(losses.read_text().splitlines()) > 3):
            assert time.time() < deadline and procs[0].poll() is None, "training never started"
            time.sleep(0.5)
        stopped = hang(procs[1].pid)
        hung_at = time.time()
        text = procs[0].communicate(timeout=120)[0]
        waited = time.time() - hung_at
    except subprocess.TimeoutExpired:
        pytest.fail("rank 0 waited for the silent rank past 120 s")
    finally:
        signal_tree(stopped, __import__("signal").SIGCONT)
        for p in procs:
            stop_group(p.pid)
    assert procs[0].returncode != 0
    assert re.search(r"timed? ?out", text, re.IGNORECASE), text[-3000:]
    assert "rank 1 of 2 went silent" in text, text[-3000:]  # named, not only "timed out"
    assert waited < 90
