"""Elastic torchrun (c10d rendezvous, --max-restarts) with `ssiw train --resume auto`, as docs/cluster.md
tells users to start it: one worker is killed (SIGKILL) after the first checkpoint, torchrun restarts the
group, and the restarted workers go on from the newest checkpoint, not from step 0. Gloo on 127.0.0.1, on
the CPU; every wait is bounded, and every process is stopped by its process group."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support.cluster import free_port, stop_group
from support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table

from trainer.cluster import shared_store_warning
from trainer.model.checkpoint import RunCheckpoint, latest_checkpoint

REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 30, 5


def _config(tmp_path: Path) -> Path:
    write_synthetic_dataset(tmp_path / "shards", SyntheticSpec("a", samples=8, size=(40, 40), shards=2))
    table = write_tiny_table(tmp_path / "table.parquet", tiny_table({"a": 4}))
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({
        "name": "run", "out_dir": str(tmp_path / "runs"), "shards": str(tmp_path / "shards"),
        "datasets": [{"name": "a"}], "table": str(table), "model": "tiny", "short_edge": 40, "crop": [32, 32],
        "batch_size": 2, "steps": STEPS, "epoch_samples": 8, "workers": 0, "checkpoint_every": EVERY,
        "log_every": 1, "amp": False, "device": "cpu", "dist_timeout_s": 30,
    }))
    return path


def _workers(agent: int) -> dict[int, int]:
    """{global rank: pid} of the workers torchrun's agent `agent` runs now."""
    import psutil

    found = {}
    for child in psutil.Process(agent).children():
        try:
            rank = child.environ().get("RANK")
        except psutil.Error:
            continue
        if rank is not None:
            found[int(rank)] = child.pid
    return found


def _wait(condition, seconds: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"torchrun ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {seconds:g} s"
        time.sleep(0.05)


def test_a_killed_worker_is_restarted_by_torchrun_and_the_group_resumes_from_the_newest_checkpoint(tmp_path):
    cfg = _config(tmp_path)
    run = tmp_path / "runs" / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}  # as docs/cluster.md says (pytorch/pytorch#167288)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "elastic-test",
           "--max-restarts", "2", "--monitor-interval", "0.5",
           "-m", "pipeline", "train", str(cfg), "--resume", "auto"]
    log = tmp_path / "torchrun.log"
    with open(log, "w") as out:
        agent = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    try:
        first = run / "checkpoints" / f"step-{EVERY:07d}.pt"
        _wait(first.exists, 120, agent, "first checkpoint")
        before = _workers(agent.pid)
        assert sorted(before) == [0, 1], before
        os.kill(before[1], signal.SIGKILL)
        _wait(lambda: set(_workers(agent.pid).values()).isdisjoint(before.values()) and _workers(agent.pid),
              60, agent, "restarted workers")
        # torchrun stopped the old group before starting the new one, which needs seconds to load: the
        # newest checkpoint now is the newest the killed attempt wrote.
        newest = latest_checkpoint(run)
        code = agent.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the restarted run did not finish within 120 s: {log.read_text()[-3000:]}")
    finally:
        stop_group(agent.pid)
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert "Worker group FAILED" in text or "failed (exitcode: -9)" in text, text[-4000:]  # torchrun saw the kill

    # The restarted group resumed from the newest checkpoint the killed attempt wrote, not from step 0. That
    # attempt did fewer than EVERY steps past it (it would have saved another), so the run did fewer than
    # STEPS + EVERY steps in all, not 2 x STEPS.
    resumed = re.findall(rf"\[ssiw\] resuming from (\S+) at step (\d+) of {STEPS}, 2 processes", text)
    assert len(resumed) == 1, text[-4000:]  # one restart, one resume
    assert resumed[0] == (str(newest), str(int(newest.stem.split("-")[1])))
    assert EVERY <= int(resumed[0][1]) < STEPS
    # It went on to the configured step, with the log of an uninterrupted run.
    final = RunCheckpoint.load(run)
    assert final.step == STEPS and final.training is not None
    with open(run / "losses.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, STEPS + 1))
    assert "warning: torchrun may restart" not in text  # the store is not shared, so no warning


def test_when_a_node_dies_the_nodes_left_go_on_from_the_newest_checkpoint(tmp_path):
    """Two torchrun nodes (--nnodes 1:2, one worker each); node 1 dies whole (agent and worker, SIGKILL).
    Node 0 restarts its worker in a world of 1 and finishes the run from the newest checkpoint. The
    rendezvous timings are shortened from torch's defaults (a dead node lapses after 15 s, then 30 s of
    last call; docs/cluster.md) to keep the test short."""
    from support.cluster import signal_tree, tree

    cfg = _config(tmp_path)
    run = tmp_path / "runs" / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1:2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "elastic-test",
           "--rdzv-conf", "last_call_timeout=2,keep_alive_interval=1,keep_alive_max_attempt=2",
           "--max-restarts", "2", "--monitor-interval", "0.5",
           "-m", "pipeline", "train", str(cfg), "--resume", "auto"]
    logs = [tmp_path / "node0.log", tmp_path / "node1.log"]
    nodes: list[subprocess.Popen] = []
    dead: list[int] = []
    try:
        for node, log in enumerate(logs):
            with open(log, "w") as out:
                nodes.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True, cwd=REPO))
            if node == 0:  # node 0 hosts the rendezvous store (the endpoint must be a node that stays up)
                _wait(lambda: _listening(port), 60, nodes[0], "rendezvous store on node 0")
        _wait(lambda: len(_workers(nodes[1].pid)) == 1, 60, nodes[1], "node 1's worker")
        first = run / "checkpoints" / f"step-{EVERY:07d}.pt"
        _wait(first.exists, 120, nodes[0], "first checkpoint")
        dead = tree(nodes[1].pid)  # the agent and its worker: the whole node
        signal_tree(dead, signal.SIGKILL)
        code = nodes[0].wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"node 0 did not finish within 150 s of node 1's death: {logs[0].read_text()[-3000:]}")
    finally:
        for proc in nodes:
            stop_group(proc.pid)
        signal_tree(dead, signal.SIGKILL)
    text = logs[0].read_text()
    assert code == 0, text[-4000:]
    # a world of 1: node 1 did not come back, and the run went on without it
    resumed = [int(s) for s in re.findall(rf"\[ssiw\] resuming from \S+step-\d+\.pt at step (\d+) of {STEPS}, 1 process\n",
                                          text)]
    assert len(resumed) == 1 and EVERY <= resumed[0] < STEPS, text[-4000:]
    final = RunCheckpoint.load(run)
    assert final.step == STEPS
    with open(run / "losses.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, STEPS + 1))


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_shared_rendezvous_store_is_warned_about_only_when_torchrun_may_restart():
    shared = {"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_MAX_RESTARTS": "3"}
    message = shared_store_warning(shared)
    assert message is not None
    assert "pytorch/pytorch#167288" in message and "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in message
    assert shared_store_warning({**shared, "TORCHELASTIC_MAX_RESTARTS": "0"}) is None  # no restart, no harm
    assert shared_store_warning({**shared, "TORCHELASTIC_USE_AGENT_STORE": "False"}) is None  # the env var set
    assert shared_store_warning({}) is None  # not under torchrun
