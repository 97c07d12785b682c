"""The plain label-PNG reader (pipeline/convert/readers/dense.py) of cityscapes, bdd100k and sunrgbd."""

from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image
from support.every_taxonomy import expected_labels
from support.generated import write_bdd100k
from support.layout import place, shipped
from support.readers import (
    check_sample,
    read_all,
    read_by_key,
)


def test_bdd100k_masks(tmp_path):
    tax = shipped("bdd100k")
    raw = write_bdd100k(tax, tmp_path, "val")
    items, samples = read_by_key(tax, tmp_path, "val")
    assert [i.key for i in items] == sorted(raw)
    table = tax.raw_to_target()
    for key, mask in raw.items():
        expected = np.vectorize(table.__getitem__)(mask)
        assert np.array_equal(samples[key].label, expected)
        assert set(np.unique(samples[key].label).tolist()) == set(range(tax.num_classes)) | {255}


def test_cityscapes_label_ids_through_taxonomy_equal_train_ids(real_fixtures, tmp_path):
    tax = shipped("cityscapes")
    src = real_fixtures / "cityscapes"
    split = "val"
    spec = tax.splits[split]
    stem = "frankfurt_000000_000294"
    place(
        tmp_path,
        spec.images,
        f"{stem}_leftImg8bit.png",
        src=src / f"leftImg8bit/{stem}_leftImg8bit.png",
        folder="frankfurt",
    )
    place(
        tmp_path,
        spec.annotations,
        f"{stem}_gtFine_labelIds.png",
        src=src / f"gtFine/{stem}_gtFine_labelIds.png",
        folder="frankfurt",
    )
    items, [sample] = read_all(tax, tmp_path, split)
    assert [i.key for i in items] == [stem]
    check_sample(sample, src / f"leftImg8bit/{stem}_leftImg8bit.png")
    train_ids = np.array(Image.open(src / f"gtFine/{stem}_gtFine_labelTrainIds.png"))
    label_ids = np.array(Image.open(src / f"gtFine/{stem}_gtFine_labelIds.png"))
    # The fixture's two PNGs were downscaled separately, so a few edge pixels disagree; per id, the
    # train id most pixels carry must be exactly what the taxonomy gives.
    assert (sample.label == train_ids).mean() > 0.99
    for value in np.unique(label_ids).tolist():
        ours = np.unique(sample.label[label_ids == value])
        assert len(ours) == 1
        assert ours[0] == Counter(train_ids[label_ids == value].tolist()).most_common(1)[0][0]


def test_sunrgbd_pairs_by_number_and_matches_plain_decode(real_fixtures, tmp_path):
    tax = shipped("sunrgbd")
    src = real_fixtures / "sunrgbd"
    split = next(iter(tax.splits))
    spec = tax.splits[split]
    place(tmp_path, spec.images, "img-000001.jpg", src=src / "image/img-000001.jpg")
    place(tmp_path, spec.annotations, "00000001.png", src=src / "label37/00000001.png")
    items, [sample] = read_all(tax, tmp_path, split)
    assert items[0].key == "img-000001"
    raw = np.array(Image.open(src / "label37/00000001.png"))
    assert np.array_equal(sample.label, expected_labels(tax, raw))
    assert np.array_equal(sample.label == 255, raw == 255)
    check_sample(sample, src / "image/img-000001.jpg")
