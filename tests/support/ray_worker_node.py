"""Start one Ray worker node on 127.0.0.1 and block until SIGTERM: a second "machine" for tests.

`ray start --address` refuses to join on loopback (Ray 2.60 only allows multi-node clusters with
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1, and that setting also rewrites 127.0.0.1 into the machine's network
address, where nothing listens). Ray's own multi-node test helper (ray.cluster_utils.Cluster.add_node)
starts a worker node through ray._private.node.Node instead; this does the same in its own process, so a
test can run it inside `unshare -m` with folders hidden, and stop it by its process group.

Usage: python ray_worker_node.py GCS_ADDRESS NUM_CPUS TEMP_DIR
The cluster's token comes from RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, as for any Ray process.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every port on 127.0.0.1, set before ray is imported


def main(gcs_address: str, num_cpus: int, temp_dir: str) -> None:
    import ray._private.node
    import ray._private.parameter

    params = ray._private.parameter.RayParams(
        gcs_address=gcs_address,
        node_ip_address="127.0.0.1",
        num_cpus=num_cpus,
        num_gpus=0,
        temp_dir=temp_dir,
        include_log_monitor=False,
        node_manager_port=0,
        min_worker_port=0,
        max_worker_port=0,
        object_store_memory=150 * 1024 * 1024,
    )
    ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    print("worker node started", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit runs Node's shutdown hook
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
