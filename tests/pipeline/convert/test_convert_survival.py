"""What a run outlives: tasks killed mid-shard leave no temps behind (in the output, or staged in the
worker's temp folder for an object store), and the deadline that decides a task is stuck."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from support.convert_fakes import make_toy_dataset, toy_plan, toy_read, toy_taxonomy

from pipeline.convert.readers.base import FunctionReader
from pipeline.convert.runner import convert_split
from pipeline.convert.scheduler import Deadline
from pipeline.safe_write import STAGING_PREFIX, remove_orphaned_staging, temp_path

SMALL = 13_000  # bytes: about 2 toy samples per shard


def _writing_a_shard() -> bool:
    """Whether this process holds a shard's temp file open (the tar being written, or its staging copy)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if ".tar.tmp-" in os.readlink(f"/proc/self/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


def die_once_mid_shard(marker: str, tax, item):
    """The first time a worker is half-way through a shard, it dies as with its node (SIGKILL)."""
    if _writing_a_shard() and not Path(marker).exists():
        Path(marker).write_text(json.dumps({"pid": os.getpid(), "tmp": tempfile.gettempdir()}))
        os.kill(os.getpid(), signal.SIGKILL)
    return toy_read(tax, item)


@pytest.fixture
def dying_reader(ray_toy, tmp_path):
    """A toy reader whose worker dies once mid-shard; Ray workers get this module by value."""
    import ray.cloudpickle

    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    marker = tmp_path / "died"
    yield FunctionReader(plan=toy_plan, read=functools.partial(die_once_mid_shard, str(marker))), marker
    ray.cloudpickle.unregister_pickle_by_value(module)


def test_a_task_killed_mid_shard_leaves_no_temp_in_the_output(dying_reader, tmp_path):
    reader, marker = dying_reader
    root = tmp_path / "root"
    make_toy_dataset(root, 12)
    out = tmp_path / "out"
    result = convert_split(toy_taxonomy(), reader, root, "train", out, shard_bytes=SMALL, use_ray=True,
                           progress=False)
    assert marker.exists() and result.written == 12  # a worker died, the shard was run again
    assert sorted(p.name for p in (out / "toy").rglob("*.tmp-*")) == []


def test_a_task_killed_mid_shard_leaves_no_staging_file_on_its_node(dying_reader, tmp_path, s3_bucket):
    reader, marker = dying_reader
    root = tmp_path / "root"
    make_toy_dataset(root, 12)
    result = convert_split(toy_taxonomy(), reader, root, "train", f"{s3_bucket}/out", shard_bytes=SMALL,
                           use_ray=True, progress=False)
    died = json.loads(marker.read_text())
    assert result.written == 12
    assert list(Path(died["tmp"]).glob(f"{STAGING_PREFIX}{died['pid']}-*")) == []


def test_orphaned_staging_files_are_those_of_dead_processes(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        mine = temp_path("s3://bucket/ds/train-000000.tar")
        mine.write_bytes(b"being written")
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        orphan = tmp_path / mine.name.replace(f"-{os.getpid()}-", f"-{gone.stdout.strip()}-")
        orphan.write_bytes(b"left by a killed task")
        other = tmp_path / "unrelated.tar.tmp-0123456789ab"
        other.write_bytes(b"not ours")
        assert remove_orphaned_staging() == [orphan]
        assert mine.exists() and other.exists()
    finally:
        tempfile.tempdir = None


def test_deadline_comes_from_the_flag_or_the_finished_shards():
    assert Deadline(fixed_s=30).seconds() == 30
    derived = Deadline(factor=5, floor_s=120, min_finished=3)
    assert derived.seconds() is None  # nothing finished yet: nothing says how long a shard takes
    derived.finished_s += [40.0, 50.0]
    assert derived.seconds() is None
    derived.finished_s.append(60.0)
    assert derived.seconds() == 250.0  # 5 x the median
    assert Deadline(finished_s=[1.0, 2.0, 3.0]).seconds() == 120.0  # never under the floor
