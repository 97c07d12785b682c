"""Two valid files that make one key, or pair with one label file, are ambiguous: both are quarantined,
each naming the other, and the rest of the split converts (before, the whole split stopped)."""

from __future__ import annotations

import numpy as np
import pytest
from support.generated import jpeg, png
from support.layout import place, shipped
from support.readers import outcome


def label(value: int) -> bytes:
    return png(np.full((6, 8), value, np.uint8))


def test_ade20k_names_that_sanitise_to_one_key(tmp_path):
    tax = shipped("ade20k-150")
    spec = tax.splits["training"]
    for stem in ("ADE_train_0009 a", "ADE_train_0009_a", "ADE_train_0001"):
        place(tmp_path, spec.images, f"{stem}.jpg", data=jpeg(8, 6))
        place(tmp_path, spec.annotations, f"{stem}.png", data=label(1))
    good, bad = outcome(tax, tmp_path, "training")
    assert list(good) == ["ADE_train_0001"]
    assert len(bad) == 2
    for e in bad.values():
        assert "'ADE_train_0009_a'" in e.reason and "ADE_train_0009 a.jpg" in e.reason
        assert "ADE_train_0009_a.jpg" in e.reason


def test_idd_frame_as_png_and_jpg(tmp_path):
    tax = shipped("idd")
    spec = tax.splits["train"]
    for ext in ("png", "jpg"):
        place(tmp_path, spec.images, f"000009_leftImg8bit.{ext}", data=jpeg(8, 6), folder="0")
    place(tmp_path, spec.images, "000001_leftImg8bit.png", data=jpeg(8, 6), folder="0")
    for frame in ("000009", "000001"):
        place(tmp_path, spec.annotations, f"{frame}_gtFine_labellevel3Ids.png", data=label(255), folder="0")
    good, bad = outcome(tax, tmp_path, "train")
    assert list(good) == ["0_000001"]
    assert len(bad) == 2
    for e in bad.values():
        assert "000009_leftImg8bit.png" in e.reason and "000009_leftImg8bit.jpg" in e.reason
        assert "ambiguous" in e.reason


@pytest.mark.parametrize("rival", ["img-0000009.jpg", "img-00009.jpg"])
def test_sunrgbd_numbers_that_pair_with_one_label(tmp_path, rival):
    tax = shipped("sunrgbd")
    spec = tax.splits["train"]
    for name in ("img-000009.jpg", rival, "img-000001.jpg"):
        place(tmp_path, spec.images, name, data=jpeg(8, 6))
    for name in ("00000009.png", "00000001.png"):
        place(tmp_path, spec.annotations, name, data=label(255))
    good, bad = outcome(tax, tmp_path, "train")
    assert list(good) == ["img-000001"]
    assert len(bad) == 2
    for e in bad.values():
        assert "img-000009.jpg" in e.reason and rival in e.reason and "00000009.png" in e.reason
