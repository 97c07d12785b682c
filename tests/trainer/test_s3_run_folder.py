"""A run folder in object storage (`out_dir: s3://...`), against a real S3 endpoint on 127.0.0.1 (moto's
server, fixture `s3_bucket` in conftest.py): checkpoints and logs land in the bucket, `--resume auto` goes
on from the bucket's newest checkpoint, the logs lose at most the rows since their last upload, and eval,
segment and `init:` read the run from the bucket. Two torchrun "nodes" that share nothing but the bucket
resume one run together."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml
from PIL import Image
from support.cluster import free_port, hidden_mount_command, needs_root, stop_group
from support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table
from typer.testing import CliRunner

from trainer.config import load_config
from trainer.model.checkpoint import RunCheckpoint
from trainer.run_log import RunLog
from trainer.train import run_training

REPO = Path(__file__).resolve().parents[2]
SIZES = {"a": 4}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """Local shards of one tiny dataset and an embedding table file for it."""
    root = tmp_path_factory.mktemp("inputs")
    write_synthetic_dataset(root / "shards", SyntheticSpec("a", samples=8, size=(40, 40), shards=2))
    return root / "shards", write_tiny_table(root / "table.parquet", tiny_table(SIZES))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run in the test's folder: code that took s3:// for a local path writes its `s3:/...` folder here."""
    monkeypatch.chdir(tmp_path)


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)


def keys(url: str) -> list[str]:
    prefix = url.removeprefix("s3://").rstrip("/")
    return sorted(key[len(prefix) + 1:] for key in s3().find(prefix))


def read(url: str) -> bytes:
    return s3().cat_file(url.removeprefix("s3://"))


def loss_steps(url: str) -> list[int]:
    return [int(row["step"]) for row in csv.DictReader(io.StringIO(read(url).decode()))]


def write_config(path: Path, shards: Path, table: Path, out_dir: str, **kw) -> Path:
    data = {"name": "run", "out_dir": out_dir, "shards": str(shards), "datasets": [{"name": "a"}],
            "table": str(table), "model": "tiny", "short_edge": 40, "crop": [32, 32], "batch_size": 2, "steps": 2,
            "epoch_samples": 8, "workers": 0, "checkpoint_every": 2, "log_every": 1, "amp": False,
            "device": "cpu", "shuffle_buffer": 4, **kw}
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_in_s3_writes_checkpoints_and_logs_there_and_resume_auto_goes_on_from_the_bucket(
        inputs, tmp_path, s3_bucket):
    shards, table = inputs
    out = f"{s3_bucket}/runs"
    run = f"{out}/run"
    first = load_config(write_config(tmp_path / "first.yaml", shards, table, out))
    assert first.run_dir == run  # a URL, not a local path
    run_training(first, progress=False)
    stored = keys(run)
    assert "checkpoints/step-0000002.pt" in stored and "config.json" in stored
    assert [k for k in stored if k.startswith("tb/events.out.tfevents.")]
    assert not [k for k in stored if ".tmp-" in k]
    assert json.loads(read(f"{run}/config.json"))["out_dir"] == out
    assert loss_steps(f"{run}/losses.csv") == [1, 2]
    first_rows = read(f"{run}/losses.csv").decode().splitlines()
    assert not (tmp_path / "s3:").exists()

    # What a crash can leave: a row and a skipped sample past the newest checkpoint (uploaded at a log
    # step), and the temp object of a save killed between its upload and its copy to the final name.
    fs = s3()
    fs.pipe_file(f"{run}/losses.csv".removeprefix("s3://"),
                 read(f"{run}/losses.csv") + b"3,9.0,1.0,1.0,1.0,0.07,0.0001,1.0,0\n")
    fs.pipe_file(f"{run}/skipped-rank0.jsonl".removeprefix("s3://"),
                 b'{"step": 1, "rank": 0, "key": "k1"}\n{"step": 3, "rank": 0, "key": "k3"}\n')
    fs.pipe_file(f"{run}/checkpoints/step-0000003.pt.tmp-0123456789ab".removeprefix("s3://"), b"half")

    second = load_config(write_config(tmp_path / "second.yaml", shards, table, out, steps=4))
    summary = run_training(second, resume="auto", progress=False)
    assert [h["step"] for h in summary["history"]] == [3, 4]  # went on from step 2, not from 0
    assert RunCheckpoint.load(run).step == 4  # the run folder's newest, read from the bucket
    assert [k for k in keys(f"{run}/checkpoints")] == ["step-0000002.pt", "step-0000004.pt"]
    assert loss_steps(f"{run}/losses.csv") == [1, 2, 3, 4]  # step 3 once, by the resumed run
    assert read(f"{run}/losses.csv").decode().splitlines()[:3] == first_rows
    assert read(f"{run}/skipped-rank0.jsonl") == b'{"step": 1, "rank": 0, "key": "k1"}\n'


def test_an_out_dir_in_a_bucket_that_is_not_there_stops_at_start_and_fails_the_check(inputs, tmp_path, s3_bucket):
    from pipeline.cli import app
    from pipeline.errors import BadInput

    shards, table = inputs
    missing = f"{s3_bucket}-gone/runs"
    config = write_config(tmp_path / "train.yaml", shards, table, missing)
    with pytest.raises(BadInput, match=f"out_dir: {missing}: no such bucket"):
        run_training(load_config(config), progress=False)
    res = CliRunner().invoke(app, ["train", str(config), "--check"])
    assert res.exit_code == 1 and f"out_dir: {missing}: no such bucket" in res.output.replace("\n", "")
    write_config(tmp_path / "there.yaml", shards, table, f"{s3_bucket}/runs")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "there.yaml"), "--check"])
    assert res.exit_code == 0 and f"out_dir {s3_bucket}/runs: the bucket is there" in res.output, res.output


def _row(step: int) -> dict:
    return {"step": step, "total": 1.0 / step, "hd": 0.5, "tau": 0.07, "lr": 1e-3, "samples_per_s": 10.0,
            "skipped": 0}


def test_the_logs_in_s3_lose_at_most_the_rows_since_their_last_upload(s3_bucket):
    run = f"{s3_bucket}/runs/logs"
    log = RunLog(run, 0, 0, 10, log_every=2, progress=False, upload_every_s=0)
    for step in range(1, 6):
        log.step(_row(step), samples_read=2 * step, samples_skipped=0)
    # A crash now (no close) loses step 5, written after the last log step's upload.
    assert loss_steps(f"{run}/losses.csv") == [1, 2, 3, 4]
    log.skipped(6, [{"shard": "a/training-000000.tar", "key": "k", "reason": "damaged"}])
    log.flush()  # before a checkpoint: everything
    assert loss_steps(f"{run}/losses.csv") == [1, 2, 3, 4, 5]
    assert json.loads(read(f"{run}/skipped-rank0.jsonl"))["key"] == "k"
    log.close()
    assert not log._spool.folder.exists()  # the spool goes once uploaded

    other = RunLog(run, 1, 0, 10, log_every=2, progress=False, upload_every_s=0)  # rank 1: its own file only
    other.skipped(2, [{"shard": "a/training-000001.tar", "key": "j", "reason": "damaged"}])
    other.step(_row(2), samples_read=4, samples_skipped=1)
    assert json.loads(read(f"{run}/skipped-rank1.jsonl"))["key"] == "j"
    other.close()

    slow = f"{s3_bucket}/runs/slow"
    log = RunLog(slow, 0, 0, 10, log_every=2, progress=False, upload_every_s=3600)
    for step in range(1, 5):
        log.step(_row(step), samples_read=2 * step, samples_skipped=0)
    assert keys(slow) == []  # log steps within log_upload_every_s of the last upload send nothing
    log.close()
    assert loss_steps(f"{slow}/losses.csv") == [1, 2, 3, 4]


def test_eval_segment_and_init_read_a_run_folder_in_s3(inputs, tmp_path, s3_bucket, capsys):
    from pipeline.cli import app

    shards, table = inputs
    out = f"{s3_bucket}/runs"
    run_training(load_config(write_config(tmp_path / "train.yaml", shards, table, out)), progress=False)
    run = f"{out}/run"
    runner = CliRunner()

    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(image)
    res = runner.invoke(app, ["segment", run, str(image), "--out", str(tmp_path / "seg")])
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(tmp_path / "seg" / "img.label.png")).shape == (30, 40)

    res = runner.invoke(app, ["eval", f"{run}/checkpoints/step-0000002.pt", "--dataset", "a", "--shards", str(shards),
                              "--split", "training", "--multi-scales", "", "--limit", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads(read(f"{run}/eval-a-training/results.json"))  # beside the checkpoint, in the bucket
    assert report["checkpoint"] == f"{run}/checkpoints/step-0000002.pt" and report["images"] == 2
    assert "eval-a-training/per_class_iou.png" in keys(run)
    res = runner.invoke(app, ["eval-tables", run, "--table", str(table), "--shards", str(shards), "--stand-in",
                              "CamVid=a:training", "--multi-scales", "", "--limit", "1"])
    assert res.exit_code == 0, res.output
    tables = json.loads(read(f"{run}/paper-tables/tables.json"))  # in the run folder, in the bucket
    camvid = next(r for r in tables["table3"]["rows"] if r["set"] == "CamVid")
    assert tables["run"] == run and camvid["present"] and camvid["images"] == 1

    tuned = load_config(write_config(tmp_path / "tune.yaml", shards, table, str(tmp_path / "runs"), name="tuned",
                                     init=run, steps=1, checkpoint_every=1))
    assert tuned.init == run  # the URL as given
    capsys.readouterr()
    run_training(tuned)
    assert f"network from {run} (step 2)" in capsys.readouterr().out


@needs_root
def test_two_nodes_sharing_only_the_bucket_resume_a_run_from_it(inputs, tmp_path, s3_bucket):
    """Rank 0 (node 0) and rank 1 (node 1, which cannot see node 0's temp folder) agree on the bucket's
    step-2 checkpoint, resume from it and finish the run there."""
    shards, table = inputs
    out = f"{s3_bucket}/runs"
    run = f"{out}/run"
    run_training(load_config(write_config(tmp_path / "first.yaml", shards, table, out)), progress=False)
    config = write_config(tmp_path / "train.yaml", shards, table, out, steps=4, dist_timeout_s=120)
    temps = [tmp_path / "node0-tmp", tmp_path / "node1-tmp"]
    port = free_port()
    procs = []
    for node, temp in enumerate(temps):
        temp.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
               "TMPDIR": str(temp)}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "pipeline", "train", str(config), "--resume", "auto"]
        if node == 1:  # the second machine cannot see the first one's disk
            cmd = hidden_mount_command([temps[0]], cmd)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True, cwd=tmp_path))
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
        pytest.fail("the two nodes did not finish")
    finally:
        for p in procs:
            stop_group(p.pid)
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    assert keys(f"{run}/checkpoints") == ["step-0000002.pt", "step-0000004.pt"]
    assert RunCheckpoint.load(run).step == 4
    assert loss_steps(f"{run}/losses.csv") == [1, 2, 3, 4]  # rows 3 and 4 from the resumed pair, once
    assert not [p for t in temps for p in t.glob("ssiw-runlog-*")]  # each node's log spool went once uploaded


def test_ray_train_writes_the_run_and_its_own_records_to_s3(inputs, tmp_path, s3_bucket, ray_session):
    from pipeline.cli import app

    shards, table = inputs
    out = f"{s3_bucket}/runs"
    write_config(tmp_path / "train.yaml", shards, table, out)
    res = CliRunner().invoke(app, ["train", str(tmp_path / "train.yaml"), "--ray"])
    assert res.exit_code == 0, res.output
    stored = keys(out)
    assert "run/checkpoints/step-0000002.pt" in stored and "run/losses.csv" in stored
    assert [k for k in stored if k.startswith("ray/run/")]  # Ray Train's storage_path: out_dir/ray
