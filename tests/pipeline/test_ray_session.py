"""Ray, safe by default, against real Ray: a private instance binds to 127.0.0.1 whatever the
environment says; `ssiw convert` joins a real `ray start --head` cluster that uses token
authentication (Ray 2.60) through the token as Ray documents it, honours RAY_ADDRESS, fails fast and
clearly on an unreachable or unauthorised cluster, and never joins a cluster it was not asked to,
even when Ray's current-cluster file names one (alive or dead).

Every Ray process here is started by this test, on loopback, in its own session and temp folder,
and stopped by its process group id (never `ray stop`, which would stop other people's Ray)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support.cluster import stop_group
from support.layout import place, shipped

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
NOT_LOOPBACK = ("0.0.0.0:", "*:", "[::]:")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listeners(pids: set[int]) -> list[str]:
    """Local addresses the given processes listen on (TCP), from `ss -ltnp`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            found.append(line.split()[3])
    return found


def group_pids(pgid: int) -> set[int]:
    import psutil

    pids = set()
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.info["pid"]) == pgid:
                pids.add(p.info["pid"])
        except (ProcessLookupError, PermissionError):
            continue
    return pids


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # nothing inherited
    env.update(HOME=str(home), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


@pytest.fixture(scope="module")
def ade(real_fixtures, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade")
    spec = shipped("ade20k-150").splits["validation"]
    src = real_fixtures / "ade20k-challenge"
    for image in sorted((src / "images").glob("*.jpg")):
        place(root, spec.images, image.name, src=image)
        place(root, spec.annotations, f"{image.stem}.png", src=src / "annotations" / f"{image.stem}.png")
    return root


def start_head(token: str, home: Path, temp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    ports = {
        f"--{name}": str(free_port())
        for name in (
            "ray-client-server-port",
            "dashboard-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
            "node-manager-port",
            "object-manager-port",
        )
    }
    env = {
        **base_env(home),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    cmd = [
        str(RAY),
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "3",
        "--include-dashboard",
        "false",
        "--temp-dir",
        str(temp),
        "--disable-usage-stats",
        *[x for kv in ports.items() for x in kv],
    ]
    with open(temp / "head.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head` with token authentication, bound to 127.0.0.1, stopped by its pgid. Ray
    gives its raylet a fixed 30 s to register, which a loaded machine can miss: up to 3 tries."""
    token = secrets.token_hex(16)
    home = tmp_path_factory.mktemp("head-home")
    temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths must fit
    proc = None
    try:
        for _ in range(3):
            proc, address = start_head(token, home, temp)
            deadline = time.time() + 150
            while time.time() < deadline and proc.poll() is None:
                if "Ray runtime started" in (temp / "head.log").read_text():
                    break
                time.sleep(1)
            if proc.poll() is None and "Ray runtime started" in (temp / "head.log").read_text():
                break
            stop_group(proc.pid)
        else:
            pytest.fail(f"ray start --head failed 3 times: {(temp / 'head.log').read_text()[-2000:]}")
        yield {"address": address, "token": token, "pgid": proc.pid}
    finally:
        if proc is not None:
            stop_group(proc.pid)
        shutil.rmtree(temp, ignore_errors=True)


def ssiw_convert(root: Path, out: Path, env: dict, *extra: str, timeout: int = 240):
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "convert",
            "ade20k-150",
            "--root",
            str(root),
            "--out",
            str(out),
            "--split",
            "validation",
            *extra,
        ],
        check=False,  # the callers assert on the return code and print the output
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    return done, time.perf_counter() - t0


def test_head_started_here_listens_on_loopback_only(head):
    found = listeners(group_pids(head["pgid"]))
    assert len(found) >= 3, found  # gcs, raylet, client server: there is something to check
    assert not [a for a in found if a.startswith(NOT_LOOPBACK)], found


PRIVATE_SCRIPT = """
import json, sys
if sys.argv[1] == "pre":
    import ray  # imported first, having read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 from the environment
from pipeline.ray_session import start_or_join, stop
started = start_or_join(None, 1)
import psutil, ray
me = psutil.Process()
pids = [me.pid] + [p.pid for p in me.children(recursive=True)]
print(json.dumps({"started": started, "pids": pids, "node_ip": ray.util.get_node_ip_address()}), flush=True)
sys.stdin.readline()  # the test looks at the listeners now
stop(started)
"""


@pytest.mark.parametrize("when", ["pre", "post"], ids=["ray-imported-first", "ray-not-imported"])
def test_private_ray_binds_to_loopback_whatever_the_environment(tmp_path, when):
    env = {**base_env(tmp_path), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", PRIVATE_SCRIPT, when],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["started"] and info["node_ip"] == "127.0.0.1"
        found = listeners(set(info["pids"]) | group_pids(proc.pid))
        assert len(found) >= 3, found  # gcs, raylet, workers: there is something to check
        assert not [a for a in found if a.startswith(NOT_LOOPBACK)], found
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        stop_group(proc.pid)


def test_convert_joins_a_token_cluster_with_the_default_token_file_and_workers(head, ade, tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(head["token"])  # where Ray documents the default token
    out = tmp_path / "out"
    done, _ = ssiw_convert(ade, out, base_env(home), "--ray-address", head["address"], "--workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"Ray: joined the cluster at {head['address']} (3 CPUs)" in done.stderr
    import polars as pl

    assert pl.read_parquet(out / "ade20k-150/validation.manifest.parquet").height == 3


def test_ray_address_variable_is_honoured_with_the_token_variable(head, ade, tmp_path):
    env = {**base_env(tmp_path), "RAY_ADDRESS": head["address"], "RAY_AUTH_TOKEN": head["token"]}
    done, _ = ssiw_convert(ade, tmp_path / "out", env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"Ray: joined the cluster at {head['address']} (3 CPUs)" in done.stderr


def test_token_cluster_without_token_fails_fast_saying_what_to_do(head, ade, tmp_path):
    done, seconds = ssiw_convert(ade, tmp_path / "out", base_env(tmp_path), "--ray-address", head["address"])
    assert done.returncode == 1
    assert seconds < 45, seconds  # Ray itself gives up after about 21 s
    message = done.stdout + done.stderr
    assert f"cannot join the Ray cluster at {head['address']}" in message
    assert "RAY_AUTH_TOKEN" in message and "~/.ray/auth_token" in message
    assert "Traceback" not in message


def test_unreachable_cluster_fails_within_30_s_naming_the_address(ade, tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    done, seconds = ssiw_convert(ade, tmp_path / "out", base_env(tmp_path), "--ray-address", address)
    assert done.returncode == 1 and seconds < 30, (seconds, done.stderr[-2000:])
    message = done.stdout + done.stderr
    assert f"cannot reach the Ray cluster at {address}" in message and "--no-ray" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("current", ["dead", "live"])
def test_plain_convert_never_joins_the_cluster_in_rays_current_cluster_file(head, ade, tmp_path, current):
    """Ray's ray_current_cluster (under RAY_TMPDIR/ray) names a dead address, or another job's live
    cluster: a plain `ssiw convert` starts its own private Ray either way, and finishes."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    try:
        (ray_tmp / "ray").mkdir()
        stale = head["address"] if current == "live" else f"127.0.0.1:{free_port()}"
        (ray_tmp / "ray" / "ray_current_cluster").write_text(stale)
        env = {**base_env(tmp_path), "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_TOKEN": head["token"]}
        done, _ = ssiw_convert(ade, tmp_path / "out", env, timeout=200)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "Ray: started a private local instance on 127.0.0.1" in done.stderr
        assert "joined" not in done.stderr
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
