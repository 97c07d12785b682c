"""The openimages_v6 reader: per-object masks resized and composed (smaller wins), a malformed CSV row,
an unknown MID and a missing mask each named."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from support.generated import write_openimages
from support.layout import shipped
from support.readers import (
    bad,
    read_by_key,
)

from pipeline.convert.readers import get_reader
from pipeline.convert.readers.base import BadSample
from pipeline.convert.readers.openimages_v6 import masks_of


def _openimages(tmp_path: Path):
    tax = shipped("openimages-v6-seg")
    split = next(iter(tax.splits))
    write_openimages(tax, tmp_path, split)
    return tax, split, tmp_path / tax.splits[split].index


def test_openimages_malformed_csv_row(tmp_path):
    """A row without the header's fields means the index is damaged: the split stops naming the line
    (it used to quarantine one image and convert the rest of a file it could not read exactly)."""
    tax, split, index = _openimages(tmp_path)
    with open(index, "a", newline="") as f:
        f.write("1f2e3d4c5b6a7980_m0_bb09.png,1f2e3d4c5b6a7980\n")  # two fields only
    with pytest.raises(BadSample) as err:
        list(get_reader("openimages_v6").plan(tax, tmp_path, split))
    assert err.value.path == str(index) and "line 5: 2 field(s) where the header has 10" in err.value.reason


def test_openimages_unknown_mid_and_missing_mask(tmp_path):
    tax, split, index = _openimages(tmp_path)
    with open(index, newline="") as f:
        rows = list(csv.reader(f))
    rows[1][2] = "/m/not_a_class"
    rows[1][0] = f"{rows[1][1]}_mnot_a_class_{rows[1][3]}.png"
    with open(index, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    items = {i.key: i for i in get_reader("openimages_v6").plan(tax, tmp_path, split)}
    err = bad(tax, items[rows[1][1]])
    assert err.path == str(index) and "/m/not_a_class" in err.reason and err.unknown == ["/m/not_a_class"]
    other = items["1f2e3d4c5b6a7980"]
    mask = masks_of(other)[0][0]
    mask.unlink()
    err = bad(tax, other)
    assert err.path == str(mask) and err.reason == "missing file"


def test_openimages_masks_resized_composed_smaller_wins(tmp_path):
    tax = shipped("openimages-v6-seg")
    split = "validation" if "validation" in tax.splits else next(iter(tax.splits))
    expected = write_openimages(tax, tmp_path, split)
    items, samples = read_by_key(tax, tmp_path, split)
    assert [i.key for i in items] == sorted(expected)
    for key, truth in expected.items():
        sample = samples[key]
        assert sample.label.dtype == np.dtype(tax.label_dtype)
        assert (sample.width, sample.height) == truth.shape[::-1]
        assert np.array_equal(sample.label, truth)
        assert sample.image_ext == "jpg"
    assert (samples["0a1b2c3d4e5f6789"].label == tax.ignore_index).any()  # uncovered strip
