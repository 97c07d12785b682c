"""The ade20k reader: challenge PNGs and full-ADE _seg.png on real samples, the PIL fast path against a
per-pixel lookup, and every kind of bad input named as a BadSample."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.every_taxonomy import expected_labels
from support.generated import jpeg, png
from support.layout import place, shipped, with_changes
from support.readers import (
    ade_sample,
    bad,
    check_counts,
    check_sample,
    read_all,
    read_one,
)

from pipeline.convert.readers import BadSample, get_reader
from pipeline.convert.readers.common import map_label_image


def test_ade_label_equals_per_pixel_lookup(tmp_path):
    raw = np.random.default_rng(1).integers(0, 151, (37, 53), dtype=np.uint8)
    tax, sample = ade_sample(tmp_path, raw)
    assert sample.label.dtype == np.uint8 and sample.label.flags.c_contiguous
    assert np.array_equal(sample.label, expected_labels(tax, raw))
    check_counts(sample)


def test_unknown_values_named_sorted(tmp_path):
    raw = np.full((20, 30), 7, np.uint8)
    raw[3, 4:7] = [250, 151, 250]
    with pytest.raises(BadSample) as err:
        ade_sample(tmp_path, raw)
    assert err.value.reason.endswith("[151, 250]")


def test_palette_label_maps_the_index_not_the_colour(tmp_path):
    tax = shipped("cityscapes")
    spec = tax.splits["val"]
    raw = np.random.default_rng(2).integers(0, 34, (24, 40), dtype=np.uint8)
    im = Image.fromarray(raw, "L").convert("P")
    im.putpalette([(255 - i) % 256 for i in range(768)])  # colours unrelated to the index
    buf = io.BytesIO()
    im.save(buf, "PNG")
    place(tmp_path, spec.images, "a_000000_000001_leftImg8bit.png", data=png(np.zeros((24, 40, 3), np.uint8)))
    place(tmp_path, spec.annotations, "a_000000_000001_gtFine_labelIds.png", data=buf.getvalue())
    sample = read_one(tax, tmp_path, "val")
    assert np.array_equal(sample.label, expected_labels(tax, raw))
    check_counts(sample)


def test_eight_bit_image_into_sixteen_bit_labels(tmp_path):
    tax = shipped("objects365-v2")  # 365 classes: uint16 labels
    known = sorted(r for r in tax.raw_to_target() if isinstance(r, int) and r < 256)
    raw = np.random.default_rng(3).choice(known, (16, 24)).astype(np.uint8)
    label, counts = map_label_image(tax, Image.fromarray(raw), "x.png")
    assert label.dtype == np.uint16 and np.array_equal(label, expected_labels(tax, raw))
    assert np.array_equal(counts, np.bincount(label.ravel(), minlength=counts.size))


def ade_root(tmp_path: Path, label: bytes | None = None, image: bytes | None = None, name: str = "ADE_val_1"):
    """One ADE challenge sample (shipped taxonomy), with the given label / image bytes."""
    tax = shipped("ade20k-150")
    spec = tax.splits["validation"]
    if image is not None:
        place(tmp_path, spec.images, f"{name}.jpg", data=image)
    if label is not None:
        place(tmp_path, spec.annotations, f"{name}.png", data=label)
    [item] = list(get_reader("ade20k").plan(tax, tmp_path, "validation"))
    return tax, item


GOOD_LABEL = png(np.full((24, 32), 3, np.uint8))


def test_good_sample_reads(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL, jpeg(32, 24))
    sample = get_reader("ade20k").read(tax, item)
    assert (sample.label == 2).all()


def test_truncated_label_png(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL[: len(GOOD_LABEL) // 2], jpeg(32, 24))
    err = bad(tax, item)
    assert err.path == item.annotation and "truncated" in err.reason


def test_truncated_jpeg_image(tmp_path):
    data = jpeg(32, 24)
    tax, item = ade_root(tmp_path, GOOD_LABEL, data[: len(data) // 2])
    err = bad(tax, item)
    assert err.path == item.image and "truncated" in err.reason


def test_not_an_image(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL, b"this is not a picture")
    err = bad(tax, item)
    assert err.path == item.image and "corrupt" in err.reason


def test_unknown_label_value_is_named(tmp_path):
    raw = np.full((24, 32), 3, np.uint8)
    raw[0, :3] = [151, 200, 151]
    tax, item = ade_root(tmp_path, png(raw), jpeg(32, 24))
    err = bad(tax, item)
    assert err.path == item.annotation and "[151, 200]" in err.reason


def test_label_size_differs_from_image(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL, jpeg(33, 24))
    err = bad(tax, item)
    assert err.path == item.annotation and "32x24" in err.reason and "33x24" in err.reason


def test_missing_image_file(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL, None)
    err = bad(tax, item)
    # Reported against the label file that exists, naming the image looked for (issue #19).
    assert err.path == item.annotation and err.reason.startswith("no image for this label file")
    assert "images/validation/ADE_val_1.jpg" in err.reason


def test_missing_label_file_after_planning(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL, jpeg(32, 24))
    Path(item.annotation).unlink()
    err = bad(tax, item)
    assert err.path == item.annotation and err.reason == "missing file"


def test_rgb_png_where_index_png_expected(tmp_path):
    tax, item = ade_root(tmp_path, png(np.zeros((24, 32, 3), np.uint8)), jpeg(32, 24))
    err = bad(tax, item)
    assert err.path == item.annotation and "'RGB'" in err.reason


def test_ade20k_challenge_matches_plain_decode(real_fixtures, tmp_path):
    tax = shipped("ade20k-150")
    src = real_fixtures / "ade20k-challenge"
    spec = tax.splits["validation"]
    for image in sorted((src / "images").glob("*.jpg")):
        place(tmp_path, spec.images, image.name, src=image)
        place(tmp_path, spec.annotations, image.stem + ".png", src=src / "annotations" / f"{image.stem}.png")
    items, samples = read_all(tax, tmp_path, "validation")
    assert [i.key for i in items] == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    for sample in samples:
        raw = np.array(Image.open(src / "annotations" / f"{sample.key}.png"))
        assert sample.label.dtype == np.uint8
        assert np.array_equal(sample.label, expected_labels(tax, raw))
        assert np.array_equal(sample.label == 255, raw == 0)  # 0 = other -> ignore
        check_sample(sample, src / "images" / f"{sample.key}.jpg")
        assert sample.sources["annotation"].startswith("annotations/validation/")


def test_ade20k_full_seg_agrees_with_shipped_challenge_png(real_fixtures, tmp_path):
    src = real_fixtures / "ade20k-full"
    tax = with_changes(
        shipped("ade20k-150"),
        tmp_path,
        splits={
            "training": {
                "images": "images/training/*/*/*.jpg",
                "annotations": "images/training/*/*/*_seg.png",
            }
        },
        format_options={
            "variant": "full",
            "annotation_suffix": "_seg",
            "map_from_ade": "index/mapFromADE.txt",
        },
    )
    root = tmp_path / "ADE20K"
    seg = place(
        root,
        "images/training/*/*/*_seg.png",
        "ADE_train_00000970_seg.png",
        src=src / "ADE_train_00000970_seg.png",
    )
    Image.new("RGB", Image.open(seg).size, (90, 90, 90)).save(seg.parent / "ADE_train_00000970.jpg")
    place(root, "index", "mapFromADE.txt", src=src / "mapFromADE.txt")
    items, [sample] = read_all(tax, root, "training")
    assert [i.key for i in items] == ["x_x_ADE_train_00000970"]  # keys carry the wildcard folders
    assert (sample.width, sample.height) == (1024, 768)
    # The official challenge PNG was made from this file and resized (nearest) to 683x512.
    challenge = np.array(Image.open(src / "ADE_train_00000970_challenge.png"))
    ours = np.array(Image.fromarray(sample.label).resize(challenge.shape[::-1], Image.NEAREST))
    agreement = (ours == expected_labels(tax, challenge)).mean()
    assert agreement > 0.98, agreement
    assert set(np.unique(ours).tolist()) == set(np.unique(expected_labels(tax, challenge)).tolist())
