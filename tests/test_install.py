"""The install paths: the lock file covers pyproject.toml, and a built wheel works from any directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements-lock.txt"
SOURCES = ["pyproject.toml", "setup.py", "README.md", "pipeline", "trainer", "taxonomies"]


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_every_dependency_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = _locked()
    for name in ("torch", "transformers", "ray", "webdataset", "s3fs", "fsspec"):
        assert name in pins, f"{name} is not pinned in {LOCK.name}"
    problems = []
    for req in wanted:
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} missing")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} outside {req.specifier}")
    assert not problems, f"{LOCK.name} is out of date with pyproject.toml (run `make lock`): {problems}"


def _copy_sources(dest: Path) -> Path:
    """Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout."""
    dest.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def test_wheel_ships_taxonomies_and_runs_from_any_directory(tmp_path):
    src = _copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(dist), str(src)], check=True)
    (wheel,) = dist.glob("ssiw-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.name for p in (REPO / "taxonomies").glob("*.yaml"))
    assert "labels.yaml" in shipped and len(shipped) > 10
    missing = [n for n in shipped if f"pipeline/shipped_taxonomies/{n}" not in names]
    assert not missing, f"taxonomies missing from the wheel: {missing}"
    recipes = sorted(p.name for p in (REPO / "taxonomies" / "corpora").glob("*.yaml"))
    assert "ssiw-paper.yaml" in recipes
    missing = [n for n in recipes if f"pipeline/shipped_taxonomies/corpora/{n}" not in names]
    assert not missing, f"corpus recipes missing from the wheel: {missing}"
    assert "trainer/configs/example.yaml" in names
    assert "pipeline/cli.py" in names and "pipeline/convert/readers/__init__.py" in names
    assert not any(n.startswith(("taxonomies/", "tests/")) for n in names)

    # A fresh venv that sees the project venv's third-party packages (torch etc.) through a .pth path
    # line, placed after its own site-packages, so `pipeline` can only come from the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SSIW_TAXONOMIES")}
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()
    Path(site, "project-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import pipeline, pipeline.paths as p; print(pipeline.__file__); print(p.default_taxonomy_dir())"],
        check=True, capture_output=True, text=True, cwd=elsewhere, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(venv), f"pipeline imported from {where[0]}, not the wheel"
    assert Path(where[1]) == Path(site) / "pipeline" / "shipped_taxonomies"

    listed = subprocess.run([str(venv / "bin" / "ssiw"), "taxonomy", "list"], check=False, capture_output=True,
                            text=True, cwd=elsewhere, env={**env, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    for dataset in ("ade20k-150", "cityscapes", "objects365-v2"):
        assert dataset in listed.stdout
    # a shipped recipe by name, from the wheel: every root is absent under an empty data root
    checked = subprocess.run([str(venv / "bin" / "ssiw"), "corpus", "check", "ssiw-paper", "--data-root", "nodata"],
                             check=False, capture_output=True, text=True, cwd=elsewhere, env={**env, "COLUMNS": "200"})
    assert checked.returncode == 1, checked.stderr
    assert "objects365-v2: root nodata/objects365 not found" in checked.stdout
