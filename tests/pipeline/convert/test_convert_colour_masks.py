"""Colour-coded masks (png_folder mode color): near colours snapped within `color_tolerance`, counted in
the summary; the unknown-value report gives every colour with totals and pixel shares (issue #19)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from support.readers import bad

from pipeline.convert.readers import get_reader
from pipeline.convert.readers.png_folder import SNAPPED
from pipeline.convert.runner import convert_split
from pipeline.convert.unknowns import render
from pipeline.taxonomy.schema import DatasetTaxonomy

URBAN, WATER, UNKNOWN = (0, 255, 255), (0, 0, 255), (0, 0, 0)  # DeepGlobe's colours


def deepglobe(tolerance: float | None = None) -> DatasetTaxonomy:
    options = {"mode": "color", "image_suffix": "_sat", "annotation_suffix": "_mask", "ignore_colors": [UNKNOWN]}
    if tolerance is not None:
        options["color_tolerance"] = tolerance
    return DatasetTaxonomy.model_validate({
        "name": "deepglobe", "version": "1", "homepage": "https://example.org", "format": "png_folder",
        "supervision": "dense", "splits": {"train": {"images": "train/*_sat.jpg", "annotations": "train/*_mask.png"}},
        "format_options": options,
        "classes": [{"name": "urban", "label": "building", "color": URBAN},
                    {"name": "water", "label": "water", "color": WATER}],
    })


def write_pair(root: Path, key: str, mask: np.ndarray) -> Path:
    (root / "train").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(mask.shape, 90, np.uint8)).save(root / "train" / f"{key}_sat.jpg")
    path = root / "train" / f"{key}_mask.png"
    Image.fromarray(mask).save(path)
    return path


def jpeg_damaged_mask() -> np.ndarray:
    """Left half urban, right half water, with a few pixels of slightly-off colours, and a stray grey."""
    mask = np.zeros((8, 10, 3), np.uint8)
    mask[:, :5], mask[:, 5:] = URBAN, WATER
    mask[0, 0] = (3, 250, 252)  # near urban
    mask[1, 7] = mask[2, 7] = (10, 4, 240)  # near water
    mask[7, 9] = (128, 128, 128)  # near nothing
    return mask


def the_item(tax, root: Path):
    [item] = list(get_reader("png_folder").plan(tax, root, "train"))
    return item


def test_without_tolerance_every_off_colour_is_named_with_its_pixels(tmp_path: Path):
    write_pair(tmp_path, "1", jpeg_damaged_mask())
    err = bad(deepglobe(), the_item(deepglobe(), tmp_path))
    assert err.reason.startswith("3 colour(s) not in taxonomy 'deepglobe'")
    assert dict(zip(err.unknown, err.unknown_pixels)) == {
        "[3, 250, 252]": 1, "[10, 4, 240]": 2, "[128, 128, 128]": 1}
    assert err.pixels == 80


def test_tolerance_snaps_near_colours_and_counts_them(tmp_path: Path):
    mask = jpeg_damaged_mask()
    mask[7, 9] = WATER
    write_pair(tmp_path, "1", mask)
    tax = deepglobe(tolerance=30)
    sample = get_reader("png_folder").read(tax, the_item(tax, tmp_path))
    expect = np.zeros((8, 10), np.uint8)
    expect[:, 5:] = 1
    np.testing.assert_array_equal(sample.label, expect)
    assert sample.notes == {SNAPPED: 3}


def test_a_colour_beyond_the_tolerance_is_still_refused(tmp_path: Path):
    write_pair(tmp_path, "1", jpeg_damaged_mask())
    tax = deepglobe(tolerance=30)
    err = bad(tax, the_item(tax, tmp_path))
    assert err.unknown == ["[128, 128, 128]"] and err.unknown_pixels == [1]


def test_the_summary_counts_snapped_pixels_and_gives_unknown_pixel_shares(tmp_path: Path):
    root = tmp_path / "root"
    clean = jpeg_damaged_mask()
    clean[7, 9] = WATER
    for key in ("1", "2"):
        write_pair(root, key, clean)
    grey = np.zeros((8, 10, 3), np.uint8)
    grey[:, :] = URBAN
    grey[:2] = (128, 128, 128)  # 20 of 80 pixels
    write_pair(root, "3", grey)
    result = convert_split(deepglobe(tolerance=30), get_reader("png_folder"), root, "train", tmp_path / "out",
                           shard_bytes=10**6, progress=False)
    assert (result.written, result.quarantined) == (2, 1)
    assert result.notes[SNAPPED] == 6  # 3 pixels in each of the two written samples
    [value] = result.unknown
    assert (value.value, value.samples, value.pixels, value.sample_pixels) == ("[128, 128, 128]", 1, 20, 80)
    assert value.share == pytest.approx(0.25)
    console = Console(width=80, record=True)
    console.print(render(result.unknown))
    text = console.export_text()
    assert "25.0%" in text and "deepglobe/train: 1 value(s) not in the taxonomy, in 1 quarantined sample(s)" in text
