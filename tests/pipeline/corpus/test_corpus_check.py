"""`ssiw corpus check`: a generated Objects365 download in the release's layout (train/patchN/ beside the
index JSON), partial and complete, through the real command; a bad recipe; the parts logic on real
folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.generated import jpeg, write
from support.layout import shipped
from typer.testing import CliRunner

from pipeline.cli import app  # the real command, with its one handler of user-facing errors
from pipeline.convert.layouts.coco import CocoImage
from pipeline.corpus.check import count_images, expand_parts, missing_parts, part_runs

PATCHES = 51  # Objects365 v2 train: patch0 .. patch50
PER_PATCH = 2


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def objects365(root: Path, present_patches: range) -> None:
    """An Objects365 v2 train split whose index lists PER_PATCH images in every patch, with the image
    files of `present_patches` only (the other archives not downloaded)."""
    tax = shipped("objects365-v2")
    images = []
    for patch in range(PATCHES):
        for k in range(PER_PATCH):
            n = patch * PER_PATCH + k
            data = jpeg(8, 6, n) if patch in present_patches else None
            images.append(CocoImage(n + 1, f"images/v1/patch{patch}/objects365_v1_{n:08d}.jpg", 8, 6, data))
    write(tax, root, "train", images)


def recipe(tmp: Path, **release) -> Path:
    """A recipe with the test's own release facts for a small Objects365."""
    path = tmp / "o365.yaml"
    release = release or {"source": "this test: 51 patches of 2 images",
                          "images": {"train": PATCHES * PER_PATCH}, "parts": {"train": ["train/patch{0..50}"]}}
    path.write_text(yaml.safe_dump({
        "name": "o365-test", "data_root": str(tmp / "data"), "out": str(tmp / "shards"),
        "datasets": [{"name": "objects365-v2", "root": "objects365", "splits": ["train"], "max_samples": 50,
                      "release": release}]}))
    return path


def test_a_partial_objects365_names_its_missing_patches_and_fails(tmp_path: Path):
    objects365(tmp_path / "data" / "objects365", present_patches=range(11))
    result = invoke("corpus", "check", recipe(tmp_path))
    assert result.exit_code == 1, result.output
    assert "objects365-v2/train: 40 of 51 parts not found: train/patch11..patch50" in result.output
    assert f"objects365-v2/train: 22 of {PATCHES * PER_PATCH} images, 80 short" in result.output
    assert "partial" in result.output


def test_a_gap_in_the_middle_is_its_own_run(tmp_path: Path):
    objects365(tmp_path / "data" / "objects365", present_patches=[p for p in range(PATCHES) if p not in (3, 4, 5, 9)])
    result = invoke("corpus", "check", recipe(tmp_path), "--json")
    assert result.exit_code == 1, result.output
    [split] = json.loads(result.output)["splits"]
    assert split["missing_parts"] == ["train/patch3..patch5", "train/patch9"]
    assert split["found"] == (PATCHES - 4) * PER_PATCH and split["status"] == "partial"


def test_a_complete_objects365_passes(tmp_path: Path):
    objects365(tmp_path / "data" / "objects365", present_patches=range(PATCHES))
    result = invoke("corpus", "check", recipe(tmp_path))
    assert result.exit_code == 0, result.output
    assert "all 1 splits complete" in result.output and "problem:" not in result.output
    assert "max 50" in result.output  # the recipe's cap beside the release's count


def test_json_reports_every_figure(tmp_path: Path):
    objects365(tmp_path / "data" / "objects365", present_patches=range(PATCHES))
    result = invoke("corpus", "check", recipe(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["ok"] is True
    [split] = out["splits"]
    assert (split["found"], split["expected"], split["cap"]) == (PATCHES * PER_PATCH, PATCHES * PER_PATCH, "max 50")
    assert (split["index_present"], split["parts"], split["missing_parts"]) == (True, PATCHES, [])


def test_a_missing_index_is_a_problem(tmp_path: Path):
    root = tmp_path / "data" / "objects365"
    objects365(root, present_patches=range(PATCHES))
    (root / shipped("objects365-v2").splits["train"].index).unlink()
    result = invoke("corpus", "check", recipe(tmp_path))
    assert result.exit_code == 1
    assert "objects365-v2/train: index annotations/zhiyuan_objv2_train.json not found" in result.output


def test_more_images_than_the_release_is_a_note_not_a_failure(tmp_path: Path):
    objects365(tmp_path / "data" / "objects365", present_patches=range(PATCHES))
    facts = {"source": "a smaller count", "images": {"train": 100}}
    result = invoke("corpus", "check", recipe(tmp_path, **facts))
    assert result.exit_code == 0, result.output
    assert "note: objects365-v2/train: 102 images, 2 more than the release's 100" in result.output


def test_a_root_that_does_not_exist_is_named(tmp_path: Path):
    result = invoke("corpus", "check", recipe(tmp_path), "--data-root", tmp_path / "elsewhere")
    assert result.exit_code == 1
    assert f"objects365-v2: root {tmp_path / 'elsewhere' / 'objects365'} not found" in result.output


def test_a_bad_recipe_names_every_unknown_dataset_split_and_release_split(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "data_root": str(tmp_path), "out": "shards", "datasets": [
        {"name": "objects366-v2"},
        {"name": "objects365-v2", "splits": ["training"]},
        {"name": "cityscapes", "release": {"source": "x", "images": {"test": 1525}}},
    ]}))
    result = invoke("corpus", "check", path)
    assert result.exit_code == 1
    assert "no taxonomy named 'objects366-v2'; did you mean 'objects365-v2'?" in result.output
    assert "(objects365-v2): no split 'training'" in result.output
    assert "(cityscapes).release.images: no split 'test'" in result.output


def test_a_part_outside_the_root_is_refused(tmp_path: Path):
    path = recipe(tmp_path, source="x", parts={"train": ["../{a,b}"]})
    result = invoke("corpus", "check", path)
    assert result.exit_code == 1
    assert "'../a' has a '..' part" in result.output


def test_a_recipe_file_that_is_not_there_is_named(tmp_path: Path):
    result = invoke("corpus", "check", tmp_path / "nope.yaml")
    assert result.exit_code == 1 and "nope.yaml: recipe file not found" in result.output


# --- the parts and counting logic, on real folders -----------------------------------------------

def test_braces_expand_in_order_once_each():
    assert expand_parts(["train/patch{0..2}", "train/patch1", "masks/{{0..1},{a..b}}*.png"]) == [
        "train/patch0", "train/patch1", "train/patch2", "masks/0*.png", "masks/1*.png", "masks/a*.png", "masks/b*.png"]


@pytest.mark.parametrize("missing,expected", [
    (["train/patch11", "train/patch12", "train/patch13"], ["train/patch11..patch13"]),
    (["train/patch2", "train/patch4", "val/patch4"], ["train/patch2", "train/patch4", "val/patch4"]),
    (["train/patch30", "train/patch9", "train/patch31"], ["train/patch9", "train/patch30..patch31"]),  # as numbers
    (["train-masks/3*.png", "train-masks/a*.png"], ["train-masks/3*.png", "train-masks/a*.png"]),
    (["gtFine/train"], ["gtFine/train"]),
])
def test_part_runs(missing, expected):
    assert part_runs(missing) == expected


def test_missing_parts_folders_files_and_globs(tmp_path: Path):
    (tmp_path / "train" / "patch0").mkdir(parents=True)
    (tmp_path / "train" / "patch0" / "a.jpg").write_bytes(b"x")
    (tmp_path / "train" / "patch1").mkdir()  # unpacked nothing: empty counts as missing
    (tmp_path / "masks").mkdir()
    for name in ("0a1_m01_b.png", "3cd_m02_c.png", "fe0_m03_d.png"):
        (tmp_path / "masks" / name).write_bytes(b"x")
    (tmp_path / "index.json").write_bytes(b"")  # a download cut at 0 bytes
    parts = expand_parts(["train/patch{0..2}", "masks/{{0..3},{e..f}}*.png", "index.json"])
    assert missing_parts(tmp_path, parts) == [
        "train/patch1", "train/patch2", "masks/1*.png", "masks/2*.png", "masks/e*.png", "index.json"]


def test_count_images_glob_folder_and_wildcard_extension(tmp_path: Path):
    for path in ("left/train/a/x_leftImg8bit.png", "left/train/a/y_leftImg8bit.jpg", "left/train/b/z_leftImg8bit.json",
                 "left/train/b/w_other.png", "flat/p0/1.jpg", "flat/p0/deep/2.JPEG", "flat/p1/3.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    assert count_images(tmp_path, "left/train/*/*_leftImg8bit.*") == 2  # the JSON is not an image
    assert count_images(tmp_path, "left/train/*/*.png") == 2
    assert count_images(tmp_path, "flat") == 2  # a folder: image files at any depth
    assert count_images(tmp_path, "left/**/*_leftImg8bit.png") == 1
    assert count_images(tmp_path, "absent/*.jpg") == 0
