"""The fast paths of the readers (PIL histogram + point, blocked gathers, end-marker image checks)
give exactly what a plain per-pixel dictionary lookup gives, and still refuse bad input."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fixtures_gen.generated import jpeg, png
from fixtures_gen.layout import place, shipped
from PIL import Image, ImageFile

from pipeline.convert.encode import encode_sample
from pipeline.convert.readers import BadSample, get_reader
from pipeline.convert.readers.common import load_image, map_label_image
from pipeline.taxonomy.lut import UnknownRawValues, apply_lut, gather, integer_lut


def by_dict(tax, raw: np.ndarray) -> np.ndarray:
    """The reference: every pixel through tax.raw_to_target(), one at a time."""
    table = tax.raw_to_target()
    return np.vectorize(table.__getitem__, otypes=[np.int64])(raw).astype(tax.label_dtype)


def read_one(tax, root, split):
    reader = get_reader(tax.format)
    [item] = list(reader.plan(tax, root, split))
    return reader.read(tax, item)


def check_counts(sample):
    """label_counts, when a reader gives them, are the label's histogram."""
    assert sample.label_counts is not None
    want = np.bincount(sample.label.ravel(), minlength=sample.label_counts.size)
    assert np.array_equal(sample.label_counts, want)


# --- images: end markers instead of a decode -------------------------------------------------------


def test_image_with_end_marker_is_not_decoded(tmp_path, monkeypatch):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg(40, 30))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("a complete JPEG was decoded"))
    assert load_image(path)[1:] == ("jpg", 40, 30)


@pytest.mark.parametrize("cut", [1, 2, 100])
def test_jpeg_cut_anywhere_near_the_end_is_truncated(tmp_path, cut):
    data = jpeg(40, 30)
    path = tmp_path / "a.jpg"
    path.write_bytes(data[:-cut])
    with pytest.raises(BadSample) as err:
        load_image(path)
    assert err.value.path == str(path) and "truncated" in err.value.reason


def test_truncated_png_image_is_refused(tmp_path):
    data = png(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    path = tmp_path / "a.png"
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(BadSample) as err:
        load_image(path)
    assert err.value.path == str(path) and "corrupt or truncated" in err.value.reason


@pytest.mark.parametrize("kind", ["jpg", "png"])
def test_bytes_after_the_end_marker_still_read(tmp_path, kind):
    """Such files get the full check, which they pass (as before the end-marker check)."""
    data = jpeg(40, 30) if kind == "jpg" else png(np.zeros((30, 40, 3), np.uint8))
    path = tmp_path / f"a.{kind}"
    path.write_bytes(data + b"\0" * 7)
    assert load_image(path) == (data + b"\0" * 7, kind, 40, 30)


# --- dense label PNGs ------------------------------------------------------------------------------


def ade_sample(tmp_path, raw: np.ndarray):
    tax = shipped("ade20k-150")
    spec = tax.splits["validation"]
    place(tmp_path, spec.images, "ADE_val_1.jpg", data=jpeg(raw.shape[1], raw.shape[0]))
    place(tmp_path, spec.annotations, "ADE_val_1.png", data=png(raw))
    return tax, read_one(tax, tmp_path, "validation")


def test_ade_label_equals_per_pixel_lookup(tmp_path):
    raw = np.random.default_rng(1).integers(0, 151, (37, 53), dtype=np.uint8)
    tax, sample = ade_sample(tmp_path, raw)
    assert sample.label.dtype == np.uint8 and sample.label.flags.c_contiguous
    assert np.array_equal(sample.label, by_dict(tax, raw))
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
    assert np.array_equal(sample.label, by_dict(tax, raw))
    check_counts(sample)


def test_eight_bit_image_into_sixteen_bit_labels(tmp_path):
    tax = shipped("objects365-v2")  # 365 classes: uint16 labels
    known = sorted(r for r in tax.raw_to_target() if isinstance(r, int) and r < 256)
    raw = np.random.default_rng(3).choice(known, (16, 24)).astype(np.uint8)
    label, counts = map_label_image(tax, Image.fromarray(raw), "x.png")
    assert label.dtype == np.uint16 and np.array_equal(label, by_dict(tax, raw))
    assert np.array_equal(counts, np.bincount(label.ravel(), minlength=counts.size))


# --- COCO panoptic ---------------------------------------------------------------------------------


def panoptic_sample(tmp_path, ids: np.ndarray, segments: dict[int, int]):
    tax = shipped("coco-panoptic-133")
    spec = tax.splits["val2017"]
    h, w = ids.shape
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    place(tmp_path, spec.images, "000000000001.jpg", data=jpeg(w, h))
    place(tmp_path, spec.annotations, "000000000001.png", data=png(rgb))
    index = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": w, "height": h}],
        "annotations": [
            {
                "image_id": 1,
                "file_name": "000000000001.png",
                "segments_info": [{"id": s, "category_id": c} for s, c in segments.items()],
            }
        ],
        "categories": [],
    }
    place(
        tmp_path,
        str(spec.index).rsplit("/", 1)[0],
        str(spec.index).rsplit("/", 1)[1],
        data=json.dumps(index).encode(),
    )
    return tax, read_one(tax, tmp_path, "val2017")


def panoptic_truth(tax, ids: np.ndarray, segments: dict[int, int]) -> np.ndarray:
    table = tax.raw_to_target()
    target = {0: tax.ignore_index, **{s: table[c] for s, c in segments.items()}}
    return np.vectorize(target.__getitem__, otypes=[np.int64])(ids).astype(tax.label_dtype)


@pytest.mark.parametrize("count", [12, 300])  # 300 segments: more than an 8-bit slot holds
def test_panoptic_equals_per_pixel_lookup(tmp_path, count):
    rng = np.random.default_rng(count)
    categories = [r for r in shipped("coco-panoptic-133").raw_to_target() if isinstance(r, int)]
    seg_ids = rng.choice(np.arange(1, 1 << 24), count, replace=False)  # every channel in use
    segments = {int(s): int(rng.choice(categories)) for s in seg_ids}
    segments[(1 << 24) + 5] = categories[0]  # listed but impossible in an RGB PNG: harmless, as before
    ids = rng.choice(np.concatenate([[0], seg_ids]), (24, 32))
    ids[0, : min(count, 32)] = seg_ids[:32]
    tax, sample = panoptic_sample(tmp_path, ids, segments)
    assert sample.label.dtype == np.uint8
    assert np.array_equal(sample.label, panoptic_truth(tax, ids, segments))
    check_counts(sample)


def test_panoptic_unlisted_id_in_blue_channel_is_named(tmp_path):
    ids = np.full((6, 8), 5, np.int64)
    ids[2, 3] = 3 * 65536 + 5  # differs from a listed id only in B
    with pytest.raises(BadSample) as err:
        panoptic_sample(tmp_path, ids, {5: 1})
    assert "segment id(s) [196613]" in err.value.reason


# --- the table helpers and the writer --------------------------------------------------------------


def test_gather_in_blocks_with_and_without_masking():
    rng = np.random.default_rng(4)
    table = rng.integers(0, 255, 1 << 10, dtype=np.uint8)
    index = rng.integers(0, 1 << 10, (37, 29)).astype(np.uint32)
    assert np.array_equal(gather(table, index, block=100), table[index])
    high = index | (rng.integers(0, 255, index.shape).astype(np.uint32) << 10)
    assert np.array_equal(gather(table, high, bits=10, block=64), table[index])
    assert gather(table, np.zeros((0, 3), np.uint32)).shape == (0, 3)


def test_apply_lut_sixteen_bit_and_out_of_table_values():
    lut = np.full(300, -1, np.int32)
    lut[[1, 2, 299]] = [0, 1, 255]
    raw = np.array([[1, 2], [299, 1]], np.uint16)
    assert apply_lut(raw, lut, "uint8").tolist() == [[0, 1], [255, 0]]
    with pytest.raises(UnknownRawValues) as err:
        apply_lut(np.array([[1, 3, 400]], np.uint16), lut, "uint8")
    assert err.value.values == [400]  # values beyond the table are named first, as before
    with pytest.raises(UnknownRawValues) as err:
        apply_lut(np.array([[1, 3, 3]], np.uint16), lut, "uint8")
    assert err.value.values == [3]
    with pytest.raises(UnknownRawValues) as err:
        apply_lut(np.array([[1, -2]], np.int64), lut, "uint8")
    assert err.value.values == [-2]


def test_apply_lut_agrees_with_plain_indexing():
    tax = shipped("cityscapes")
    lut = integer_lut(tax, 256)
    raw = np.random.default_rng(5).choice(np.flatnonzero(lut >= 0), (31, 17)).astype(np.uint8)
    assert np.array_equal(apply_lut(raw, lut, "uint8"), lut[raw].astype(np.uint8))


def test_writer_uses_reader_counts_and_checks_them(tmp_path):
    raw = np.random.default_rng(6).integers(0, 151, (20, 30), dtype=np.uint8)
    tax, sample = ade_sample(tmp_path, raw)
    row = encode_sample(tax, "validation", sample).row
    counts = np.bincount(sample.label.ravel(), minlength=256)
    assert row["classes_present"] == [c for c in range(tax.num_classes) if counts[c]]
    assert row["class_pixels"] == [int(counts[c]) for c in row["classes_present"]]
    sample.label_counts = sample.label_counts.copy()
    sample.label_counts[0] += 1
    with pytest.raises(ValueError, match="counts sum to 601, not 600"):
        encode_sample(tax, "validation", sample)
