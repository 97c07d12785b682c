"""`ssiw convert` on a Ray cluster whose machines share nothing but the output location (a moto S3 server).

The cluster is a Ray head with no CPUs (so every task runs elsewhere) and worker nodes in their own mount
namespaces, where the driver's temp folder is an empty tmpfs, as on a second machine (support/cluster.py).
The driver is a subprocess joining the cluster with its token, as `ssiw convert --ray-address` does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
from support.cluster import Cluster, needs_root
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_taxonomy

from pipeline.convert.runner import convert_split

pytestmark = needs_root

SMALL = 13_000  # bytes: about 2 toy samples per shard
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
    temp = tmp_path_factory.mktemp("cluster")
    driver_tmp = temp / "driver-tmp"
    driver_tmp.mkdir()
    c = Cluster(temp)
    c.driver_tmp = driver_tmp
    try:
        c.start_head(num_cpus=0)
        c.add_node(2, hidden=[driver_tmp])
        yield c
    finally:
        c.stop()


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
