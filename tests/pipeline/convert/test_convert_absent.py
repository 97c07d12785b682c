"""A split with whole folders missing (a user who fetched 2 of 6 Objects365 archives): the planner says which
folders are absent before their files are quarantined one by one, and shards are cut by sample count as
well as bytes, so missing files (which weigh nothing) do not pack into one shard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.generated import jpeg
from support.layout import place, shipped

from pipeline.convert.absent import absent_folders
from pipeline.convert.plan import DEFAULT_SHARD_SAMPLES, cut_groups, plan_split
from pipeline.convert.readers import get_reader
from pipeline.convert.runner import convert_split


@pytest.fixture(scope="module")
def tax():
    return shipped("objects365-v2")


def partial_download(root: Path, tax, present: range, absent: range, per_patch: int) -> int:
    """An Objects365 val index listing `per_patch` images in each patch; only the `present` patches'
    images are on disk (the `absent` archives were never unpacked). Returns how many images it lists."""
    images, anns, n = [], [], 0
    for patch in [*present, *absent]:
        for _ in range(per_patch):
            n += 1
            name = f"objects365_v2_{n:08d}.jpg"
            if patch in present:  # where the official archives unpack it, not where file_name says
                place(root, f"{tax.splits['val'].images}/patch{patch}", name, data=jpeg(20, 16, n))
            images.append({"id": n, "file_name": f"images/v2/patch{patch}/{name}", "width": 20, "height": 16})
            anns.append({"id": n, "image_id": n, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0})
    index = root / tax.splits["val"].index
    index.parent.mkdir(parents=True, exist_ok=True)
    cats = [{"id": c.raw_id, "name": c.name} for c in tax.classes]
    index.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return n


def test_shards_close_at_the_sample_count_when_files_weigh_nothing():
    assert cut_groups([0] * 10, target=10**9, max_count=4) == [(0, 4), (4, 8), (8, 10)]
    assert cut_groups([5] * 6, target=10, max_count=100) == [(0, 2), (2, 4), (4, 6)]  # bytes still cut
    assert len(cut_groups([3072] * 50_000, target=10**9)) == -(-50_000 // DEFAULT_SHARD_SAMPLES)


def test_absent_archives_are_named_as_folder_ranges_and_shards_stay_small(tmp_path, tax, capsys):
    root = tmp_path / "o365"
    listed = partial_download(root, tax, present=range(2), absent=range(2, 6), per_patch=12)
    result = convert_split(tax, get_reader("objects365"), root, "val", tmp_path / "out", shard_bytes=10**9,
                           shard_samples=10, progress=False, index=False)
    said = capsys.readouterr().err
    assert "objects365-v2/val: val/patch2..patch5: not found, 48 files (each will be quarantined)" in said
    assert result.written == 24 and result.quarantined == 48 and listed == 72
    assert result.shards == 8  # 72 samples, 10 at most per shard: not one shard for everything
    assert result.notes["files under val/patch2..patch5, a folder not found (quarantined)"] == 48


def test_only_folders_that_do_not_exist_are_summarised(tmp_path):
    (tmp_path / "a" / "patch1").mkdir(parents=True)
    missing = [str(tmp_path / "a" / "patch1" / "gone.jpg"),  # folder there: an ordinary quarantine entry
               *(str(tmp_path / "a" / f"patch{n}" / f"{k}.jpg") for n in (3, 4, 5, 9) for k in range(2)),
               str(tmp_path / "b" / "c" / "x.png")]  # b/ is absent as a whole: named once, at the top
    assert absent_folders(str(tmp_path), missing) == [("b", 1), ("a/patch3..patch5", 6), ("a/patch9", 2)]
    assert absent_folders(str(tmp_path), missing[:1]) == []


def test_a_complete_download_reports_nothing(tmp_path, tax):
    root = tmp_path / "o365"
    partial_download(root, tax, present=range(2), absent=range(0), per_patch=3)
    plans = plan_split(get_reader("objects365"), tax, root, "val", 10**9)
    assert plans.absent == [] and len(plans) == 1
    # Sized where the reader finds them (the archives' layout), not 0 for a path that is not there.
    assert plans[0].est_bytes > 6 * 3072
