"""Names from a taxonomy become paths (split names, a split's images/index, path options): they are
checked once (pipeline/names.py) when the taxonomy is validated and again where the path is built,
so nothing is read or written outside --root and --out."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_taxonomy

from pipeline.convert.runner import convert_split
from pipeline.errors import BadInput
from pipeline.names import inside, path_name, relative_path
from pipeline.taxonomy.load import validate_folder
from pipeline.taxonomy.schema import SplitSpec

REGISTRY = """
standalone: true
labels:
  road: {name: road, wikipedia: Road, group: ground, description: A road is a paved way for vehicles.}
"""

TOY = """
name: toy
version: "1"
homepage: https://example.org
format: png_folder
supervision: dense
splits:
  train: {images: "img/*.jpg", annotations: "ann/*.png"}
ignore_values: [0]
classes:
  - {raw_id: 1, name: road, label: road}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "labels.yaml").write_text(REGISTRY)
    (tmp_path / "toy.yaml").write_text(text)
    return [str(p) for p in validate_folder(tmp_path)[1]]


@pytest.mark.parametrize("split", ["../../../victim", "a/b", ".plan", ".."])
def test_validate_refuses_a_split_name_that_is_not_one_file_name(tmp_path, split):
    found = problems(tmp_path, TOY.replace("  train:", f"  {split!r}:"))
    assert len(found) == 1 and "split name" in found[0] and repr(split) in found[0]


@pytest.mark.parametrize(("field", "value"), [("images", "../outside/*.jpg"), ("annotations", "/etc"),
                                              ("index", "lists/../../x.txt")])
def test_validate_refuses_split_paths_that_leave_the_root(tmp_path, field, value):
    text = TOY.replace('annotations: "ann/*.png"}', f'annotations: "ann/*.png", {field}: {value!r}}}')
    if field != "index":
        text = TOY.replace(f'{field}: "{"img/*.jpg" if field == "images" else "ann/*.png"}"', f"{field}: {value!r}")
    found = problems(tmp_path, text)
    assert len(found) == 1 and f"splits.train.{field}" in found[0] and repr(value) in found[0]


def test_validate_refuses_a_path_option_that_leaves_the_root(tmp_path):
    found = problems(tmp_path, TOY + "format_options: {scene_list: '../../lists/{split}.txt'}\n")
    assert len(found) == 1 and "format_options.scene_list" in found[0] and "'..'" in found[0]


def test_validate_refuses_a_text_ignore_value_and_a_negative_raw_id(tmp_path):
    found = problems(tmp_path, TOY.replace("ignore_values: [0]", "ignore_values: ['zero']")
                     .replace("raw_id: 1,", "raw_id: -3,"))
    assert len(found) == 2
    assert "ignore_values[0]" in found[0] and "'zero' is not an integer" in found[0]
    assert "'road'" in found[1] and "raw id -3 is negative" in found[1]


def test_convert_refuses_a_split_name_that_leaves_out(tmp_path):
    """A taxonomy object made without validation: the path builders refuse the name themselves, so
    the tar, manifest and quarantine stay inside --out and the plan folder emptied is this split's."""
    root = tmp_path / "data"
    make_toy_dataset(root, 3)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    split = "../../../victim"
    tax = toy_taxonomy().model_copy(update={"splits": {split: SplitSpec(images="train/images",
                                                                        annotations="train/labels")}})
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(BadInput, match="split name"):
        convert_split(tax, TOY_READER, root, split, tmp_path / "out" / "shards", shard_bytes=10**6,
                      progress=False)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert [p for p in tmp_path.rglob("*") if p not in before and "out" not in p.relative_to(tmp_path).parts] == []


def test_the_one_rule():
    assert path_name("train2017", "split") == "train2017"
    for bad in ("..", "../x", "a/b", ".hidden", "", "a\\b"):
        with pytest.raises(BadInput):
            path_name(bad, "split")
    assert relative_path("images/v2/patch0/a.jpg", "x") == "images/v2/patch0/a.jpg"
    assert inside("/data", "train/*.jpg") == Path("/data/train/*.jpg")
    for bad in ("../a.jpg", "/etc/passwd", "a/../../b", "C:\\x.jpg", "a\\..\\..\\b"):
        assert inside("/data", bad) is None
