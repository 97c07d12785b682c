"""A run killed between checkpoints and resumed logs like an uninterrupted one (issue #21): losses.csv
keeps the rows up to the checkpoint's step, and every later step is logged once, by the resumed run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table
from trainer.config import load_config
from trainer.model.checkpoint import latest_checkpoint
from trainer.run_log import cut_jsonl, cut_losses_csv
from trainer.train import run_training

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY = 40, 8


def _steps_and_totals(run_dir: Path) -> tuple[list[int], list[float]]:
    with open(run_dir / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(r["step"]) for r in rows], [float(r["total"]) for r in rows]


def _config(tmp_path: Path, name: str) -> Path:
    if not (tmp_path / "shards").exists():
        write_synthetic_dataset(tmp_path / "shards", SyntheticSpec("a", samples=8, size=(40, 40)))
        write_tiny_table(tmp_path / "table.parquet", tiny_table({"a": 4}))
    path = tmp_path / f"{name}.yaml"
    # log_every above the checkpoint interval: the case where rows between checkpoints were lost.
    path.write_text(yaml.safe_dump({
        "name": name, "out_dir": str(tmp_path / "runs"), "shards": str(tmp_path / "shards"),
        "datasets": [{"name": "a"}], "table": str(tmp_path / "table.parquet"), "model": "tiny", "short_edge": 40,
        "crop": [32, 32], "batch_size": 2, "steps": STEPS, "epoch_samples": 8, "workers": 0, "lr": 1e-2,
        "checkpoint_every": EVERY, "log_every": 5, "shuffle_buffer": 4, "device": "cpu",
    }))
    return path


def _kill_after_first_checkpoint(config: Path, run_dir: Path) -> None:
    """`ssiw train` in its own process, killed (SIGKILL) as soon as its first checkpoint is on disk."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "train", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = run_dir / "checkpoints" / f"step-{EVERY:07d}.pt"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_killed_and_resumed_run_logs_every_step_once(tmp_path):
    import torch

    torch.set_num_threads(1)
    full = load_config(_config(tmp_path, "full"))
    run_training(full, progress=False)

    killed = load_config(_config(tmp_path, "killed"))
    _kill_after_first_checkpoint(tmp_path / "killed.yaml", killed.run_dir)
    checkpoint = latest_checkpoint(killed.run_dir)
    assert checkpoint is not None and checkpoint.name != f"step-{STEPS:07d}.pt", "the run was not killed mid-way"
    run_training(killed, resume=checkpoint, progress=False)

    steps, totals = _steps_and_totals(killed.run_dir)
    full_steps, full_totals = _steps_and_totals(full.run_dir)
    assert full_steps == list(range(1, STEPS + 1))
    assert steps == full_steps  # no duplicates, no gaps
    assert totals == pytest.approx(full_totals, rel=1e-4)


def test_cutting_back_keeps_complete_entries_up_to_the_step(tmp_path):
    losses = tmp_path / "losses.csv"
    losses.write_text("step,total,hd,ld,wd,tau,lr,samples_per_s,skipped\n"
                      "1,2.0,1.0,,,0.07,0.01,5.0,0\n2,1.5,1.0,,,0.07,0.01,5.0,0\n3,1.2,1.0,,,0.07,0.01,5.0,0\n"
                      "4,1.1,1.0,,,0.0")  # the last row cut short by a kill
    cut_losses_csv(losses, 2)
    assert [r["step"] for r in csv.DictReader(losses.open())] == ["1", "2"]
    cut_losses_csv(losses, 0)  # a fresh run in the same folder starts over
    assert losses.read_text().splitlines() == ["step,total,hd,ld,wd,tau,lr,samples_per_s,skipped"]

    skipped = tmp_path / "skipped-rank0.jsonl"
    skipped.write_text("".join(json.dumps({"step": s, "key": f"k{s}"}) + "\n" for s in (1, 3, 5)) + '{"step": 6, "ke')
    cut_jsonl(skipped, 3)
    assert [json.loads(line)["step"] for line in skipped.read_text().splitlines()] == [1, 3]
