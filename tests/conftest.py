"""Shared test fixtures. Ray starts once per session, bound to loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every Ray port binds to 127.0.0.1 with this set, so tests never listen on the network or join another
# cluster; set before ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
REAL_FIXTURES = REPO.parent / "shared" / "fixtures" / "real"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """The real annotation samples beside the checkout (shared/fixtures/real/SOURCES.md).

    CI always has them. A fresh clone without the folder skips these tests, saying why."""
    if not REAL_FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {REAL_FIXTURES} (they sit beside the checkout in CI)")
    return REAL_FIXTURES


@pytest.fixture(scope="session")
def shipped_taxonomies():
    """The shipped taxonomy folder, loaded and validated once (raises listing every problem)."""
    from pipeline.paths import default_taxonomy_dir
    from pipeline.taxonomy.load import load_taxonomy_set

    return load_taxonomy_set(default_taxonomy_dir())


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray runtime shared by every test that needs one."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_toy(ray_session):
    """Ray workers cannot import the test folder: send the toy reader's module (support.convert_fakes) by value."""
    import ray.cloudpickle
    from support import convert_fakes

    ray.cloudpickle.register_pickle_by_value(convert_fakes)
    yield ray_session
    ray.cloudpickle.unregister_pickle_by_value(convert_fakes)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 endpoint on 127.0.0.1 (moto's server mode), reached through the standard AWS variables,
    as a user's MinIO or Ceph would be. Yields the endpoint URL; the server is stopped by its pid."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    server = Path(sys.executable).parent / "moto_server"
    if not server.exists():
        server = Path(shutil.which("moto_server") or "moto_server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"moto_server did not start on {url} (exit code {proc.poll()})") from None
                time.sleep(0.1)
        names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                 "AWS_ALLOW_HTTP", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
        saved = {k: os.environ.get(k) for k in names}
        for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(k, None)
        # Subprocesses (a killed convert, Ray workers) inherit these like any user's shell.
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION="us-east-1", AWS_ALLOW_HTTP="true")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if "saved" in locals():
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh bucket per test, as an s3:// URL."""
    import re
    import uuid

    import fsspec

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(name)
    return f"s3://{name}"
