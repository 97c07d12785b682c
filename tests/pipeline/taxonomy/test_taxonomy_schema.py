"""Each kind of taxonomy mistake gives its own clear error naming the file and the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.taxonomy.load import validate_folder

REGISTRY = """
standalone: true  # a whole taxonomy set, not a layer over the shipped one
labels:
  car: {name: car, wikipedia: Car, group: vehicles, description: A car is a motor vehicle with four wheels.}
  road: {name: road, wikipedia: Road, group: ground, description: A road is a paved way for vehicles.}
"""

GOOD = """
name: toy
version: "1"
homepage: https://example.org
format: png_folder
supervision: dense
declared_classes: 2
splits:
  train: {images: "img/*.jpg", annotations: "ann/*.png"}
ignore_values: [0]
classes:
  - {raw_id: 1, name: road, label: road}
  - {raw_ids: [2, 3], name: car, label: car}
"""


def _folder(tmp_path: Path, dataset_yaml: str, registry: str = REGISTRY) -> Path:
    (tmp_path / "labels.yaml").write_text(registry)
    (tmp_path / "toy.yaml").write_text(dataset_yaml)
    return tmp_path


def _messages(tmp_path: Path, dataset_yaml: str, registry: str = REGISTRY) -> list[str]:
    _, problems = validate_folder(_folder(tmp_path, dataset_yaml, registry))
    return [str(p) for p in problems]


def test_good_file_is_valid_and_indices_follow_yaml_order(tmp_path):
    taxset, problems = validate_folder(_folder(tmp_path, GOOD))
    assert problems == []
    tax = taxset.dataset("toy")
    assert tax.raw_to_index() == {1: 0, 2: 1, 3: 1}
    assert tax.label_dtype == "uint8" and tax.ignore_index == 255


def test_duplicate_raw_id(tmp_path):
    bad = GOOD.replace("raw_ids: [2, 3]", "raw_ids: [1, 3]")
    msgs = _messages(tmp_path, bad)
    assert len(msgs) == 1
    assert "toy.yaml" in msgs[0] and "'car'" in msgs[0] and "duplicate raw id 1" in msgs[0]


def test_unknown_label(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("label: car", "label: automobile"))
    assert len(msgs) == 1
    assert "toy.yaml" in msgs[0] and "unknown label 'automobile'" in msgs[0] and "'car'" in msgs[0]


def test_missing_description_in_registry(tmp_path):
    registry = REGISTRY.replace(", description: A road is a paved way for vehicles.", "")
    msgs = _messages(tmp_path, GOOD, registry)
    assert any("labels.yaml" in m and "'road'" in m and "description" in m for m in msgs), msgs


def test_blank_description_in_registry(tmp_path):
    registry = REGISTRY.replace("A road is a paved way for vehicles.", "'  '")
    msgs = _messages(tmp_path, GOOD, registry)
    assert any("labels.yaml" in m and "'road'" in m and "blank" in m for m in msgs), msgs


def test_count_disagrees_with_declared(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("declared_classes: 2", "declared_classes: 3"))
    assert msgs == [f"{tmp_path / 'toy.yaml'}: classes: 2 classes listed but declared_classes is 3"]


def test_raw_id_both_class_and_ignored(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("ignore_values: [0]", "ignore_values: [0, 1]"))
    assert len(msgs) == 1 and "raw id 1 is both a class and in ignore_values" in msgs[0]


def test_unknown_format(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("format: png_folder", "format: tiff_stack"))
    assert len(msgs) == 1 and "unknown format 'tiff_stack'" in msgs[0]


def test_missing_field_names_class(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("{raw_id: 1, name: road, label: road}", "{raw_id: 1, name: road}"))
    assert len(msgs) == 1 and "classes[0] 'road'.label" in msgs[0] and "required" in msgs[0].lower()


def test_duplicate_yaml_key_is_caught(tmp_path):
    registry = REGISTRY + "  car: {name: car, wikipedia: Car, group: vehicles, description: Again.}\n"
    msgs = _messages(tmp_path, GOOD, registry)
    assert any("labels.yaml" in m and "duplicate key 'car'" in m for m in msgs), msgs


def test_label_defined_in_two_registry_files(tmp_path):
    _folder(tmp_path, GOOD)
    (tmp_path / "labels-extra.yaml").write_text(
        "labels:\n  car: {name: car, wikipedia: Car, group: vehicles, description: Again.}\n"
    )
    _, problems = validate_folder(tmp_path)
    assert [p.where for p in problems] == ["label 'car'"]
    assert "already defined in" in problems[0].message


def test_name_must_match_file(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("name: toy", "name: other"))
    assert len(msgs) == 1 and "differs from the file name 'toy'" in msgs[0]


def test_box_supervision_needs_box_format(tmp_path):
    msgs = _messages(tmp_path, GOOD.replace("supervision: dense", "supervision: box"))
    assert len(msgs) == 1 and "'box' supervision needs a box format" in msgs[0]


def test_invalid_yaml(tmp_path):
    msgs = _messages(tmp_path, "name: [unclosed\n")
    assert len(msgs) == 1 and "toy.yaml" in msgs[0] and "not valid YAML" in msgs[0]


def test_more_than_254_classes_uses_16_bit(tmp_path):
    classes = "\n".join(f"  - {{raw_id: {i}, name: c{i}, label: car}}" for i in range(1, 301))
    text = GOOD.split("\nclasses:")[0].replace("declared_classes: 2", "declared_classes: 300") + "\nclasses:\n" + classes
    taxset, problems = validate_folder(_folder(tmp_path, text))
    assert problems == []
    tax = taxset.dataset("toy")
    assert tax.label_dtype == "uint16" and tax.ignore_index == 65535


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_override_description(tmp_path, value):
    bad = GOOD.replace("{raw_id: 1, name: road, label: road}", f"{{raw_id: 1, name: road, label: road, description: '{value}'}}")
    msgs = _messages(tmp_path, bad)
    assert len(msgs) == 1 and "description override is empty" in msgs[0]


def test_class_marked_ignore_keeps_its_index_but_writes_ignore(tmp_path):
    text = GOOD.replace("{raw_ids: [2, 3], name: car, label: car}", "{raw_ids: [2, 3], name: car, label: car}\n  - {raw_id: 9, name: unlabeled, label: road, ignore: true}").replace("declared_classes: 2", "declared_classes: 3")
    taxset, problems = validate_folder(_folder(tmp_path, text))
    assert problems == []
    tax = taxset.dataset("toy")
    assert tax.num_classes == 3
    assert tax.raw_to_target() == {0: 255, 1: 0, 2: 1, 3: 1, 9: 255}


def test_lut_refuses_unknown_values(tmp_path):
    import numpy as np

    from pipeline.taxonomy.lut import UnknownRawValues, apply_lut, integer_lut

    taxset, _ = validate_folder(_folder(tmp_path, GOOD))
    lut = integer_lut(taxset.dataset("toy"), 256)
    assert apply_lut(np.array([[0, 1, 2, 3]], dtype=np.uint8), lut, "uint8").tolist() == [[255, 0, 1, 1]]
    with pytest.raises(UnknownRawValues) as err:
        apply_lut(np.array([[1, 7, 7, 4]], dtype=np.uint8), lut, "uint8")
    assert err.value.values == [4, 7]
