"""`ssiw convert` on a Ray cluster whose machines share nothing but the output location (a moto S3 server).

The cluster is a Ray head with no CPUs (so every task runs elsewhere) and worker nodes in their own mount
namespaces, where the driver's temp folder is an empty tmpfs, as on a second machine (support/cluster.py).
The driver is a subprocess joining the cluster with its token, as `ssiw convert --ray-address` does."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
from support.cluster import Cluster, hang, needs_root, signal_tree, stop_group, tree
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_taxonomy

from pipeline.convert.runner import convert_split

pytestmark = needs_root

SMALL = 13_000  # bytes: about 2 toy samples per shard
TASK_TITLES = ("ray::shard_task", "ray::convert_shard")  # a busy worker, now and before the scheduler
DRIVER = """
import json, sys
from pathlib import Path
import ray.cloudpickle
import support.convert_fakes as fakes
from pipeline.convert.runner import convert_split, ensure_ray
address, root, out, shard_bytes, extra = sys.argv[1:6]
ensure_ray(address, None)
ray.cloudpickle.register_pickle_by_value(fakes)  # worker nodes cannot import the test folder
r = convert_split(fakes.toy_taxonomy(), fakes.TOY_READER, Path(root), "train", out, shard_bytes=int(shard_bytes),
                  use_ray=True, progress=False, **json.loads(extra))
print("RESULT", json.dumps({"written": r.written, "shards": r.shards, "quarantined": r.quarantined}))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head without CPUs + one 2-CPU worker node that cannot see the driver's temp folder."""
    c = _head_only(tmp_path_factory, "cluster")
    try:
        c.add_node(2, hidden=[c.driver_tmp])
        yield c
    finally:
        c.stop()


def _head_only(tmp_path_factory, name: str) -> Cluster:
    """A started head without CPUs, and the driver's own temp folder (which worker nodes are not to see)."""
    temp = tmp_path_factory.mktemp(name)
    c = Cluster(temp)
    c.driver_tmp = temp / "driver-tmp"
    c.driver_tmp.mkdir()
    try:
        c.start_head(num_cpus=0)
    except BaseException:
        c.stop()
        raise
    return c


def drive(cluster: Cluster, root: Path, out: str, timeout: float = 240, **extra) -> subprocess.CompletedProcess:
    env = cluster.env(TMPDIR=str(cluster.driver_tmp))
    return subprocess.run([sys.executable, "-c", DRIVER, cluster.address, str(root), out, str(SMALL), json.dumps(extra)],
                          check=False, env=env, capture_output=True, text=True, timeout=timeout)


def objects(url: str) -> dict[str, bytes]:
    fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)
    prefix = url.removeprefix("s3://").rstrip("/")
    return {key[len(prefix) + 1:]: fs.cat_file(key) for key in fs.find(prefix)}


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_toy_dataset(root, 9)
    return root


def test_s3_output_converts_on_a_node_that_cannot_see_the_drivers_disk(cluster, toy_root, s3_bucket):
    reference = f"{s3_bucket}/no-ray"
    convert_split(toy_taxonomy(), TOY_READER, toy_root, "train", reference, shard_bytes=SMALL, progress=False)
    out = f"{s3_bucket}/cluster"
    done = drive(cluster, toy_root, out)
    assert done.returncode == 0, done.stderr[-4000:]
    assert '"written": 9' in done.stdout
    assert objects(out) == objects(reference)  # byte-identical to the in-process run, plan gone
    assert not list(cluster.driver_tmp.rglob("*"))  # nothing left on the driver's disk


def shard_tasks_on(node: int) -> list[int]:
    """Pids of the shard tasks a node runs (Ray titles a busy worker `ray::<task>`)."""
    import psutil

    found = []
    for pid in tree(node):
        try:
            if any(t in " ".join(psutil.Process(pid).cmdline()) for t in TASK_TITLES):
                found.append(pid)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(scope="module")
def hang_cluster(tmp_path_factory):
    """Head without CPUs, a healthy 2-CPU node and a slow 1-CPU node that the tests hang (SIGSTOP)."""
    c = _head_only(tmp_path_factory, "hang-cluster")
    try:
        c.healthy = c.add_node(2, hidden=[c.driver_tmp])
        c.slow = c.add_node(1, hidden=[c.driver_tmp], TOY_READ_DELAY="1.0")
        yield c
    finally:
        c.stop()


def start_driver(cluster: Cluster, root: Path, out: str, **extra) -> subprocess.Popen:
    env = cluster.env(TMPDIR=str(cluster.driver_tmp))
    return subprocess.Popen([sys.executable, "-c", DRIVER, cluster.address, str(root), out, str(SMALL), json.dumps(extra)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def hang_when_busy(node: int, driver: subprocess.Popen, seconds: float = 90) -> list[int]:
    """Hang a whole node (support.cluster.hang) once one of its workers runs a shard task."""
    deadline = time.time() + seconds
    while not shard_tasks_on(node):
        assert driver.poll() is None, driver.communicate()
        assert time.time() < deadline, "no shard task ever ran on the node to hang"
        time.sleep(0.2)
    return hang(node)


def finish(driver: subprocess.Popen, seconds: float) -> tuple[int, str, str]:
    try:
        out, err = driver.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop_group(driver.pid)
        out, err = driver.communicate()
        pytest.fail(f"the job hung past {seconds} s: {err[-3000:]}")
    return driver.returncode, out, err


def test_a_hung_node_costs_a_deadline_not_the_job(hang_cluster, tmp_path, s3_bucket):
    """The slow node is stopped while it runs a shard: that shard is cancelled after task_timeout and
    converted again on the healthy node; the output is what an in-process run writes."""
    root = tmp_path / "root"
    make_toy_dataset(root, 24)
    reference = f"{s3_bucket}/no-ray"
    convert_split(toy_taxonomy(), TOY_READER, root, "train", reference, shard_bytes=SMALL, progress=False)
    out = f"{s3_bucket}/cluster"
    driver = start_driver(hang_cluster, root, out, task_timeout=30)  # roomy: a busy CI machine starts workers slowly
    try:
        hang_when_busy(hang_cluster.slow, driver)
        code, stdout, stderr = finish(driver, 200)
    finally:
        stop_group(driver.pid)
    assert code == 0, stderr[-4000:]
    assert '"written": 24' in stdout
    assert objects(out) == objects(reference)


def test_when_every_node_hangs_the_job_fails_naming_the_shard_and_node(hang_cluster, tmp_path, s3_bucket):
    root = tmp_path / "root"
    make_toy_dataset(root, 8)
    hang(hang_cluster.slow)  # (already, after the test above)
    driver = start_driver(hang_cluster, root, f"{s3_bucket}/out", task_timeout=5)
    stopped = []
    try:
        stopped = hang_when_busy(hang_cluster.healthy, driver)
        code, _, stderr = finish(driver, 150)
    finally:
        stop_group(driver.pid)
        signal_tree(stopped, signal.SIGCONT)
    assert code != 0
    message = stderr.strip().splitlines()[-1]
    # Both nodes stalled on a shard: the job stops at once rather than wait for a node to come back.
    assert "ShardStalled: toy: no node left to run" in message, stderr[-3000:]
    assert re.search(r"toy/train-0000\d\d: attempt 1: no progress in \d+ s on node [0-9a-f]{8} \(127.0.0.1\)", message)
