"""The one way an ssiw command gets Ray: join the cluster it was asked to, or start a private one
that only this machine can reach.

- Asked (`--ray-address ADDR`, else the RAY_ADDRESS environment variable): join ADDR. Reachability is
  checked first, so a cluster that is not there fails in seconds, naming the address. A cluster
  with token authentication (Ray 2.52+; `ray start --head` uses it whenever a token is configured)
  is joined with its token as Ray documents it: RAY_AUTH_TOKEN, a file named by RAY_AUTH_TOKEN_PATH,
  or ~/.ray/auth_token; with one of those present and RAY_AUTH_MODE unset we set RAY_AUTH_MODE=token,
  which Ray itself does only for clusters it finds on its own.
- Not asked: start a new local instance (`address="local"`), never joining another job's cluster
  through Ray's current-cluster file (/tmp/ray/ray_current_cluster, which may also name a dead
  cluster and make ray.init hang). Every port binds to 127.0.0.1 whatever the environment says:
  Ray binds to loopback only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is 0, which it reads when
  `ray` is first imported, so it is set before that (and checked after start).

Heavy imports stay inside the functions.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from pipeline.errors import SsiwError

LOOPBACK = "127.0.0.1"
BIND_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray binds every port to the loopback address
PROBE_SECONDS = 10.0  # how long an unreachable address is retried before giving up


class RaySessionError(SsiwError):
    """Ray could not be started or joined; the message says which address and what to do."""


def requested_address(explicit: str | None) -> str | None:
    """The cluster the user asked for: the flag, else RAY_ADDRESS; None means start a private one."""
    return explicit or os.environ.get("RAY_ADDRESS") or None


def start_or_join(address: str | None = None, num_cpus: int | None = None, quiet: bool = False) -> bool:
    """Join the requested cluster or start a private loopback one, unless Ray is already connected.
    True when this call connected (the caller then calls `stop()`). num_cpus applies to a private
    instance only: on a cluster, the caller limits its own tasks in flight instead."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return False
    target = requested_address(address)
    if target is None:
        _start_private(num_cpus)
        if not quiet:
            print(f"Ray: started a private local instance on {LOOPBACK}", file=sys.stderr)
    else:
        cpus = _join(target)
        if not quiet:
            print(f"Ray: joined the cluster at {target} ({cpus:g} CPUs)", file=sys.stderr)
    return True


def stop(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()


def _bind_to_loopback() -> None:
    os.environ[BIND_ENV] = "0"  # for this process (if ray is not imported yet) and every child
    if "ray" in sys.modules:
        # Ray read the variable at import; the module-level flag is what its address lookup reads.
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def _start_private(num_cpus: int | None) -> None:
    _bind_to_loopback()
    import ray

    for attempt in (1, 2):
        try:
            ray.init(
                address="local",  # a new instance: never RAY_ADDRESS or the current-cluster file
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address=LOOPBACK,
            )
            break
        except Exception as e:  # Ray raises a bare Exception for this one
            # Ray gives its raylet a fixed 30 s to register; a busy machine can miss it once.
            if "timed out during startup" not in str(e):
                raise
            ray.shutdown()
            if attempt == 2:
                raise RaySessionError(
                    f"the local Ray instance did not start twice ({e}); the machine may be overloaded: "
                    "try again, pass --workers with fewer CPUs, or --no-ray"
                ) from None
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:  # never leave a reachable instance running
        ray.shutdown()
        raise RaySessionError(f"the local Ray instance came up on {node_ip}, not {LOOPBACK}; it was stopped")


def token_available() -> bool:
    """Whether this process has a Ray auth token where Ray looks for one."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def _host_port(address: str) -> tuple[str, int] | None:
    """host and port of "host:port" or "ray://host:port"; None for forms Ray resolves itself (auto)."""
    bare = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or LOOPBACK, int(port)


def probe(address: str, seconds: float = PROBE_SECONDS) -> None:
    """Fail fast, naming the address, when nothing accepts connections there."""
    where = _host_port(address)
    if where is None:
        return
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(where, timeout=2.0):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise RaySessionError(
                    f"cannot reach the Ray cluster at {address} ({e.strerror or e}). Check that the "
                    f"cluster is running (`ray status --address {address}` on its head node) and that the "
                    "address is the head's GCS address as `ray start --head` printed it (default port "
                    "6379); or leave out --ray-address and RAY_ADDRESS to run on a private local Ray, or "
                    "pass --no-ray."
                ) from None
            time.sleep(0.5)


def is_loopback(address: str) -> bool:
    where = _host_port(address)
    return where is not None and (where[0] in ("localhost", "::1") or where[0].startswith("127."))


def _join(address: str) -> float:
    probe(address)
    if is_loopback(address):
        # A cluster on this machine's loopback: this driver must bind there too, and Ray would
        # otherwise rewrite 127.0.0.1 into the machine's network address, where nothing listens.
        _bind_to_loopback()
    if "RAY_AUTH_MODE" not in os.environ and token_available():
        os.environ["RAY_AUTH_MODE"] = "token"  # documented client setting; Ray reads it at start
    import ray
    import ray.exceptions

    # Ray before 2.52 has no token authentication (nor this exception).
    AuthenticationError = getattr(ray.exceptions, "AuthenticationError", ())

    how = (
        "give this process the cluster's token as Ray documents it: RAY_AUTH_TOKEN=<token>, or "
        "RAY_AUTH_TOKEN_PATH=<file>, or the file ~/.ray/auth_token (`ray get-auth-token` on the head "
        "prints it)"
    )
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except AuthenticationError:
        raise RaySessionError(
            f"the Ray cluster at {address} did not accept this process's token: {how}"
        ) from None
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        # The port answered (probe), so the cluster is there; the usual reason it refuses a driver
        # is token authentication, which Ray reports only in its log lines above.
        if token_available():
            hint = (
                "if Ray's log above says InvalidAuthToken, the token this process has is not the cluster's; "
                + how
            )
        else:
            hint = "if it uses token authentication (Ray's log above says InvalidAuthToken), " + how
        raise RaySessionError(
            f"cannot join the Ray cluster at {address} ({type(e).__name__}: {e}); {hint}"
        ) from None
    return float(ray.cluster_resources().get("CPU", 0))
