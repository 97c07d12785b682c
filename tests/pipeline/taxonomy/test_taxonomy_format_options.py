"""`ssiw taxonomy validate` runs each format's own option checks (names, values, what colour mode
needs), and `ssiw taxonomy formats` lists every format with its options, defaults and an example
that validates as it is (issue #19)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.taxonomy.formats import FORMAT_INFO, OPTION_INFO, example_yaml
from pipeline.taxonomy.load import validate_folder


def colour_yaml(**changes) -> dict:
    doc = example_yaml("png_folder", colour=True)
    doc["name"] = "dg"
    doc.update(changes)
    return doc


def problems_of(tmp_path: Path, doc: dict) -> list[str]:
    folder = tmp_path / "mine"
    folder.mkdir(exist_ok=True)
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    _, problems = validate_folder(folder, only=[path])
    return [str(p) for p in problems]


def validate_cli(tmp_path: Path, doc: dict):
    problems_of(tmp_path, doc)  # writes the file
    return CliRunner().invoke(app, ["taxonomy", "validate", str(tmp_path / "mine" / f"{doc['name']}.yaml")])


def test_colour_mode_needs_no_raw_id(tmp_path: Path):
    assert problems_of(tmp_path, colour_yaml()) == []


def test_an_unknown_option_name_is_refused_naming_what_the_format_reads(tmp_path: Path):
    result = validate_cli(tmp_path, colour_yaml(format_options={"mode": "color", "pair": "stem"}))
    assert result.exit_code == 1
    out = result.output.replace("\n", "")
    assert "format_options.pair: means nothing to the 'png_folder' reader" in out and "pair_by" in out


@pytest.mark.parametrize("options, message", [
    ({"mode": "colour"}, "format_options.mode: must be one of 'index', 'color', not 'colour'"),
    ({"mode": "color", "ignore_colors": [[0, 0, 300]]}, "format_options.ignore_colors: must be a list of [r, g, b]"),
    ({"mode": "color", "color_tolerance": "high"}, "format_options.color_tolerance: must be a number >= 0"),
    ({"mode": "color", "pair_by": "name"}, "format_options.pair_by: must be one of 'stem', 'number'"),
    ({"mode": "color", "image_suffix": 3}, "format_options.image_suffix: must be text"),
    ({"ignore_colors": [[0, 0, 0]]}, "format_options.ignore_colors: only mode color reads it"),
])
def test_option_values_are_checked(tmp_path: Path, options, message):
    doc = colour_yaml(format_options=options)
    if options.get("mode") != "color":  # index mode: classes need their pixel values
        doc["classes"] = [{**c, "raw_id": i + 1} for i, c in enumerate(doc["classes"])]
    assert any(message in p for p in problems_of(tmp_path, doc)), problems_of(tmp_path, doc)


def test_a_colour_class_without_color_gets_a_clear_message(tmp_path: Path):
    doc = colour_yaml()
    doc["classes"][1] = {"name": "building", "label": "building", "raw_id": 2}
    assert problems_of(tmp_path, doc) == [
        (f"{tmp_path / 'mine' / 'dg.yaml'}: classes[1] 'building'.color: mode color needs `color: [r, g, b]` "
         "for every class")]
    doc["classes"][1] = {"name": "building", "label": "building"}
    [problem] = problems_of(tmp_path, doc)
    assert "classes[1] 'building'" in problem and "color: [r, g, b]" in problem
    doc["classes"][1] = {"name": "building", "label": "building", "raw_id": [70, 70, 70]}  # a colour in raw_id
    [problem] = problems_of(tmp_path, doc)
    assert "classes[1] 'building'.raw_id: a list is not a raw id" in problem and "`color: [r, g, b]`" in problem


def test_index_formats_still_need_raw_ids(tmp_path: Path):
    doc = example_yaml("cityscapes")
    doc["classes"][0] = {"name": "road", "label": "road", "color": [1, 2, 3]}
    [problem] = problems_of(tmp_path, doc)
    assert "classes[0] 'road'" in problem and "give raw_id or raw_ids" in problem


def test_every_option_a_format_reads_is_documented():
    assert {o for f in FORMAT_INFO.values() for o in f.options} <= set(OPTION_INFO)


@pytest.mark.parametrize("name", sorted(FORMAT_INFO))
def test_each_format_example_validates_as_it_is(tmp_path: Path, name: str):
    assert problems_of(tmp_path, example_yaml(name)) == []


def test_formats_command_lists_every_format_with_options_defaults_and_an_example(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["taxonomy", "formats"])
    assert result.exit_code == 0, result.output
    for name in FORMAT_INFO:
        assert f"{name} (format version" in result.output and f"format: {name}" in result.output
    assert "minimal example (mode color)" in result.output and "color: [128, 64, 128]" in result.output
    assert "ignore_colors      []" in result.output and "mode               'index'" in result.output
    result = CliRunner().invoke(app, ["taxonomy", "formats", "png-folder"])
    assert result.exit_code == 1 and "no format 'png-folder'" in result.output
