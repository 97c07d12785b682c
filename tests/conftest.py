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
