"""pipeline.safe_write: nothing half-written under a final name, and the temps it leaves are known."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from pipeline.safe_write import (
    atomic_path,
    is_temp,
    remove_stale_temps,
    save_figure,
    temp_path,
    write_bytes_atomic,
    write_text_atomic,
)


def test_writes_through_a_temp_beside_the_final(tmp_path: Path):
    final = tmp_path / "deep" / "er" / "out.json"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith("out.json.tmp-") and is_temp(tmp)
        assert final.parent.is_dir() and not final.exists()
        tmp.write_text("{}")
    assert final.read_text() == "{}"
    assert os.listdir(final.parent) == ["out.json"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path: Path):
    final = tmp_path / "table.parquet"
    final.write_bytes(b"old")

    class WriterBroke(Exception):
        pass

    with pytest.raises(WriterBroke), atomic_path(final) as tmp:
        tmp.write_bytes(b"half of the new")
        raise WriterBroke()
    assert final.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["table.parquet"]
    with pytest.raises(WriterBroke), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise WriterBroke()
    assert not (tmp_path / "new.bin").exists()
    assert os.listdir(tmp_path) == ["table.parquet"]


def test_bytes_and_text_replace_the_final(tmp_path: Path):
    final = tmp_path / "notes.md"
    write_text_atomic(final, "first ✓")
    assert write_bytes_atomic(final, "second ✓".encode()) == final
    assert final.read_text(encoding="utf-8") == "second ✓"
    assert os.listdir(tmp_path) == ["notes.md"]


def test_figures_keep_their_format_though_the_temp_has_no_suffix(tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, magic in (("chart.png", b"\x89PNG"), ("chart.svg", b"<?xml")):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        out = save_figure(fig, tmp_path / name, dpi=50)
        assert out.read_bytes().startswith(magic)
        assert not plt.fignum_exists(fig.number)  # closed after saving
    assert sorted(os.listdir(tmp_path)) == ["chart.png", "chart.svg"]


def test_temps_are_unique_per_attempt(tmp_path: Path):
    names = {temp_path(tmp_path / "x.tar").name for _ in range(50)}
    assert len(names) == 50 and all(re.fullmatch(r"x\.tar\.tmp-[0-9a-f]{12}", n) for n in names)


def test_remove_stale_temps_knows_exactly_its_own_names(tmp_path: Path):
    ours = [temp_path(tmp_path / n) for n in ("train-000000.tar", "train.manifest.parquet", "index.parquet")]
    others = [
        "train-000000.tar",  # finished files
        "notes.tmp",  # someone else's temp naming
        "train-000000.tar.tmp-xyz",  # not hex
        "train-000000.tar.tmp-0123456789abcdef",  # not our length
        ".hidden.parquet.1234.tmp",
        "report.tmp-0123456789ab.md",  # the mark not at the end
    ]
    for p in ours:
        p.write_bytes(b"partial")
    for name in others:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / "sub").mkdir()
    below = temp_path(tmp_path / "sub" / "a.json")
    below.write_bytes(b"not this folder")

    assert remove_stale_temps(tmp_path) == sorted(ours)
    assert sorted(os.listdir(tmp_path)) == sorted([*others, "sub"])
    assert below.exists()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_remove_stale_temps_by_final_name_and_age(tmp_path: Path):
    train, val = temp_path(tmp_path / "train-000001.tar"), temp_path(tmp_path / "val-000001.tar")
    young, old = temp_path(tmp_path / "index.parquet"), temp_path(tmp_path / "index.parquet")
    for p in (train, val, young, old):
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))

    assert remove_stale_temps(tmp_path, re.compile(r"train-\d{6}\.tar")) == [train]
    assert remove_stale_temps(tmp_path, re.compile(r"index\.parquet"), min_age_s=600) == [old]
    assert val.exists() and young.exists()
