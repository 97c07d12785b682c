"""Several "machines" on one: a Ray head and worker nodes on 127.0.0.1, each worker node in its own mount
namespace (`unshare -m`) with an empty tmpfs over the folders a real second machine could not see (the
driver's temp folder, a local run folder). Needs root for `unshare -m`; `needs_root` skips otherwise.

Every process is started in its own session and stopped by its process group id, never by name."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
WORKER_NODE = Path(__file__).with_name("ray_worker_node.py")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(),
    reason="hiding a folder from a simulated second machine needs root for `unshare -m` (CI runs as root)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def tree(pid: int) -> list[int]:
    """A process and all its descendants (Ray starts its workers in sessions of their own)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def signal_tree(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def hang(pid: int) -> list[int]:
    """Stop a whole node (its Python process, raylet, object store, workers) with SIGSTOP: hung, not
    crashed. Returns the pids stopped, for `signal_tree(pids, SIGCONT)`."""
    pids = tree(pid)
    signal_tree(pids, signal.SIGSTOP)
    return pids


def stop_group(pgid: int) -> None:
    """Stop every process of a group this test started: SIGCONT (it may be stopped), SIGTERM, SIGKILL."""
    for sig, wait in ((signal.SIGCONT, 0), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline and group_alive(pgid):
            time.sleep(0.2)


def hidden_mount_command(hidden: list[Path], command: list[str]) -> list[str]:
    """`command` in a new mount namespace where every folder in `hidden` is an empty tmpfs."""
    mounts = " && ".join(["true", *(f"mount -t tmpfs none '{p}'" for p in hidden)])
    quoted = " ".join(f"'{c}'" for c in command)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mounts} && exec {quoted}"]


@dataclass
class Cluster:
    """A Ray head (no CPUs unless asked) and worker nodes joined with the cluster's token."""

    temp: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    address: str = ""
    pgids: list[int] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(PYTHONPATH=f"{REPO}:{REPO / 'tests'}", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                   RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HOME=str(self.temp), HF_HUB_OFFLINE="1")
        env.update(extra)
        return env

    def start_head(self, num_cpus: int = 0) -> None:
        port = free_port()
        ports = [x for name in ("ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                "runtime-env-agent-port", "metrics-export-port", "node-manager-port",
                                "object-manager-port")
                 for x in (f"--{name}", str(free_port()))]
        folder = Path(f"/tmp/rh{secrets.token_hex(3)}")  # short: Ray's socket paths must fit
        folder.mkdir()
        self.folders.append(folder)
        log = self.temp / "head.log"
        cmd = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
               "--num-cpus", str(num_cpus), "--include-dashboard", "false", "--temp-dir", str(folder),
               "--disable-usage-stats", *ports]
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgids.append(proc.pid)
        self.address = f"127.0.0.1:{port}"
        _wait_for(lambda: "Ray runtime started" in log.read_text(), 150, proc, log)

    def add_node(self, num_cpus: int, hidden: list[Path], **env: str) -> int:
        """A worker node that cannot see `hidden`; returns its process group id (SIGSTOP it to hang it)."""
        folder = Path(f"/tmp/rw{secrets.token_hex(3)}")  # short: Ray's socket paths must fit
        folder.mkdir()
        self.folders.append(folder)
        log = self.temp / f"worker-{folder.name}.log"
        cmd = hidden_mount_command(hidden, [sys.executable, str(WORKER_NODE), self.address, str(num_cpus), str(folder)])
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=self.env(**env), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.pgids.append(proc.pid)
        self.workers.append(proc.pid)
        _wait_for(lambda: "worker node started" in log.read_text(), 150, proc, log)
        return proc.pid

    def stop(self) -> None:
        for pgid in reversed(self.pgids):
            descendants = tree(pgid)  # workers live in their own sessions
            signal_tree(descendants, signal.SIGCONT)
            stop_group(pgid)
            signal_tree(tree(pgid) + descendants, signal.SIGKILL)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def _wait_for(ready, seconds: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"{proc.args[:3]} did not start: {log.read_text()[-3000:]}")
