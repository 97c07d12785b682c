"""A user's taxonomy folder holds only its own YAMLs and new labels, layered over the shipped set
wherever a taxonomy is read: --taxonomies (repeatable) and $SSIW_TAXONOMIES (a path list); later
folders win (issue #19)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.paths import default_taxonomy_dir
from pipeline.taxonomy.load import TaxonomyError, load_taxonomy_set

NEW_LABEL = {"greenhouse": {"name": "greenhouse", "wikipedia": "Greenhouse", "group": "structures",
                            "description": "A greenhouse is a building with glass or plastic walls for growing plants."}}


def dataset_yaml(name: str, labels=("building", "water", "greenhouse")) -> dict:
    return {
        "name": name, "version": "1", "homepage": "https://example.org", "format": "png_folder",
        "supervision": "dense", "splits": {"train": {"images": "train/*_sat.jpg", "annotations": "train/*_mask.png"}},
        "format_options": {"image_suffix": "_sat", "annotation_suffix": "_mask"},
        "ignore_values": [0],
        "classes": [{"name": label, "label": label, "raw_id": i + 1} for i, label in enumerate(labels)],
    }


def user_folder(path: Path, datasets: dict[str, dict], labels: dict | None = NEW_LABEL) -> Path:
    path.mkdir(parents=True)
    if labels is not None:
        (path / "labels.yaml").write_text(yaml.safe_dump({"labels": labels}))
    for name, doc in datasets.items():
        (path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return path


def test_a_folder_of_new_yamls_and_new_labels_works_on_top_of_the_shipped_set(tmp_path: Path):
    mine = user_folder(tmp_path / "mine", {"my-landcover": dataset_yaml("my-landcover")})
    taxset = load_taxonomy_set(mine)
    shipped = load_taxonomy_set()
    assert set(taxset.datasets) == set(shipped.datasets) | {"my-landcover"}
    assert set(taxset.registry.labels) == set(shipped.registry.labels) | {"greenhouse"}
    assert taxset.dataset("my-landcover").class_labels == ["building", "water", "greenhouse"]
    assert taxset.folders[0] == default_taxonomy_dir() and taxset.folders[-1] == mine


def test_a_folder_without_labels_yaml_is_a_layer_too(tmp_path: Path):
    mine = user_folder(tmp_path / "mine", {"plain": dataset_yaml("plain", ("building", "water"))}, labels=None)
    assert load_taxonomy_set(mine).dataset("plain").num_classes == 2


def test_later_folders_win_and_a_same_named_yaml_replaces_the_shipped_one(tmp_path: Path):
    shipped_ade = yaml.safe_load((default_taxonomy_dir() / "ade20k-150.yaml").read_text())
    replaced = {**shipped_ade, "classes": shipped_ade["classes"][:3], "declared_classes": 3}
    first = user_folder(tmp_path / "first", {"ade20k-150": replaced, "my-landcover": dataset_yaml("my-landcover")})
    second = user_folder(tmp_path / "second", {"my-landcover": dataset_yaml("my-landcover", ("building", "water"))},
                         labels=None)
    taxset = load_taxonomy_set([first, second])
    assert taxset.dataset("ade20k-150").num_classes == 3
    assert taxset.dataset("my-landcover").num_classes == 2  # the second folder's
    assert taxset.files["my-landcover"] == second / "my-landcover.yaml"


def test_ssiw_taxonomies_is_a_path_list_under_the_command_line_folders(tmp_path: Path, monkeypatch):
    first = user_folder(tmp_path / "first", {"my-landcover": dataset_yaml("my-landcover")})
    second = user_folder(tmp_path / "second", {"other": dataset_yaml("other", ("building",))}, labels=None)
    third = user_folder(tmp_path / "third", {"my-landcover": dataset_yaml("my-landcover", ("water",))}, labels=None)
    monkeypatch.setenv("SSIW_TAXONOMIES", os.pathsep.join([str(first), str(second)]))
    taxset = load_taxonomy_set()
    assert {"my-landcover", "other", "ade20k-150"} <= set(taxset.datasets)
    assert taxset.dataset("my-landcover").num_classes == 3
    assert load_taxonomy_set(third).dataset("my-landcover").num_classes == 1  # --taxonomies after the env


def test_redefining_a_shipped_label_is_an_error_naming_both_files(tmp_path: Path):
    water = {"water": {"name": "water", "wikipedia": "Water", "group": "nature", "description": "Wet stuff."}}
    mine = user_folder(tmp_path / "mine", {}, labels=water)
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy_set(mine)
    message = str(err.value)
    assert str(mine / "labels.yaml") in message and "label 'water'" in message
    assert f"already defined in {default_taxonomy_dir() / 'labels.yaml'}" in message


def test_every_command_reads_the_layers(tmp_path: Path, monkeypatch):
    mine = user_folder(tmp_path / "mine", {"my-landcover": dataset_yaml("my-landcover")})
    other = user_folder(tmp_path / "other", {"other": dataset_yaml("other", ("greenhouse",))}, labels=None)
    runner = CliRunner()
    result = runner.invoke(app, ["taxonomy", "validate", "--taxonomies", str(mine), "--taxonomies", str(other)])
    assert result.exit_code == 0, result.output
    assert "my-landcover.yaml" in result.output and "other.yaml" in result.output
    result = runner.invoke(app, ["taxonomy", "validate", str(mine / "my-landcover.yaml")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["taxonomy", "show", "my-landcover", "--taxonomies", str(mine)])
    assert result.exit_code == 0 and "greenhouse" in result.output
    monkeypatch.setenv("SSIW_TAXONOMIES", str(mine))
    result = runner.invoke(app, ["taxonomy", "show", "my-landcover"])
    assert result.exit_code == 0 and "greenhouse" in result.output


def test_a_standalone_folder_is_a_whole_set(tmp_path: Path):
    labels = {"standalone": True, "labels": NEW_LABEL}
    alone = user_folder(tmp_path / "alone", {"g": dataset_yaml("g", ("greenhouse",))}, labels=None)
    (alone / "labels.yaml").write_text(yaml.safe_dump(labels))
    taxset = load_taxonomy_set(alone)
    assert set(taxset.datasets) == {"g"} and set(taxset.registry.labels) == {"greenhouse"}


def test_the_list_fits_80_columns_with_names_whole(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    mine = user_folder(tmp_path / "mine", {"deepglobe-landcover": dataset_yaml("deepglobe-landcover")})
    result = CliRunner().invoke(app, ["taxonomy", "list", "--taxonomies", str(mine)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in result.output
    assert any("deepglobe-landcover" in line and "png_folder" in line for line in lines)
    assert any("version" in line and "classes" in line for line in lines)
