"""The mapillary reader: palette index, never RGB, on the real v1.2 and v2.0 samples, and a version
option that must match the labels folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.every_taxonomy import expected_labels
from support.layout import place, shipped, with_changes
from support.readers import (
    check_sample,
    read_all,
)

from pipeline.convert.readers import get_reader


def _mapillary(real_fixtures: Path, tmp_path: Path, version: str):
    tax = shipped(f"mapillary-vistas-{version}")
    src = real_fixtures / "mapillary"
    spec = tax.splits["training"]
    place(tmp_path, spec.images, "__CRyFzoDOXn6unQ6a3DnQ.jpg", src=src / "images/__CRyFzoDOXn6unQ6a3DnQ.jpg")
    place(
        tmp_path,
        spec.annotations,
        "__CRyFzoDOXn6unQ6a3DnQ.png",
        src=src / version / "__CRyFzoDOXn6unQ6a3DnQ.png",
    )
    items, [sample] = read_all(tax, tmp_path, "training")
    assert [i.key for i in items] == ["__CRyFzoDOXn6unQ6a3DnQ"]
    check_sample(sample, src / "images/__CRyFzoDOXn6unQ6a3DnQ.jpg")
    return tax, sample, Image.open(src / version / "__CRyFzoDOXn6unQ6a3DnQ.png")


def test_mapillary_v12_class_colours_equal_rgb_rendering(real_fixtures, tmp_path):
    tax, sample, png = _mapillary(real_fixtures, tmp_path, "v1.2")
    config = json.loads((real_fixtures / "mapillary/config_v1.1.json").read_text())["labels"]
    ignored_raw = [r for c in tax.classes if c.ignore for r in c.all_raw_ids] + list(tax.ignore_values)
    # Class index -> its raw id -> the colour the official config gives that id.
    colour_of = np.array([config[c.raw_id]["color"] for c in tax.classes] + [[0, 0, 0]], dtype=np.uint8)
    rendered = np.array(png.convert("RGB"))
    known = sample.label != 255
    assert known.mean() > 0.5
    assert np.array_equal(colour_of[sample.label[known]], rendered[known])
    assert all(
        tuple(rendered[y, x]) in {tuple(config[r]["color"]) for r in ignored_raw}
        for y, x in zip(*np.nonzero(~known))
    )


def test_mapillary_v20_palette_index_not_rgb(real_fixtures, tmp_path):
    tax, sample, png = _mapillary(real_fixtures, tmp_path, "v2.0")
    raw = np.array(png)
    assert png.mode == "P"
    assert np.array_equal(sample.label, expected_labels(tax, raw))
    if all(c.color is not None for c in tax.classes):
        colours = np.array([c.color for c in tax.classes] + [[0, 0, 0]], dtype=np.uint8)
        known = sample.label != 255
        assert np.array_equal(colours[sample.label[known]], np.array(png.convert("RGB"))[known])


def test_mapillary_version_must_match_the_labels_folder(tmp_path):
    tax = with_changes(shipped("mapillary-vistas-v2.0"), tmp_path, format_options={"version": "v1.2"})
    with pytest.raises(ValueError, match="version is 'v1.2' but split 'training' reads labels from"):
        list(get_reader("mapillary").plan(tax, tmp_path, "training"))
