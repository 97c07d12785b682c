"""Shared reader parts (pipeline/convert/readers/common.py, pipeline/taxonomy/lut.py): damaged images
refused even when they keep their end marker, blocked gathers and lookup tables equal plain indexing, and the
shard writer uses (and checks) the label counts a reader gives."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from support.generated import jpeg, png
from support.layout import shipped
from support.readers import ade_sample

from pipeline.convert.encode import encode_sample
from pipeline.convert.readers import BadSample
from pipeline.convert.readers.common import load_image
from pipeline.taxonomy.lut import UnknownRawValues, apply_lut, gather, integer_lut, mapper_for


@pytest.fixture(scope="module")
def real_jpeg(real_fixtures) -> bytes:
    """A real photo (COCO val2017, shared/fixtures/real), so the scan is a camera's, not a test pattern."""
    return min((real_fixtures / "coco-panoptic" / "images").glob("*.jpg")).read_bytes()


def flipped(data: bytes, at: int, count: int = 64) -> bytes:
    out = bytearray(data)
    for i in range(at, at + count):
        out[i] ^= 0xFF
    return bytes(out)


def test_damaged_images_that_keep_their_end_marker_are_refused(tmp_path, real_jpeg):
    """PIL decodes all three without a word (libjpeg's warnings are silenced; a PNG's CRCs are not checked
    by a decode); each would be written as garbage behind a correct label."""
    scan = real_jpeg.index(b"\xff\xda")
    as_png = png(np.asarray(Image.open(io.BytesIO(real_jpeg)).convert("RGB")))
    idat = as_png.index(b"IDAT")
    damaged = {
        "flipped.jpg": flipped(real_jpeg, scan + (len(real_jpeg) - scan) // 2),
        "cut.jpg": real_jpeg[: int(len(real_jpeg) * 0.4)] + b"\xff\xd9",
        "flipped.png": flipped(as_png, idat + 100),
    }
    for name, data in damaged.items():
        assert data.endswith(b"\xff\xd9" if name.endswith("jpg") else b"IEND\xaeB`\x82")
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(BadSample) as err:
            load_image(path)
        assert err.value.path == str(path) and "corrupt" in err.value.reason, name
    path = tmp_path / "intact.jpg"
    path.write_bytes(real_jpeg)
    assert load_image(path).data == real_jpeg


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
    """Trailing bytes after the end marker are common (cameras append data) and harmless."""
    data = jpeg(40, 30) if kind == "jpg" else png(np.zeros((30, 40, 3), np.uint8))
    path = tmp_path / f"a.{kind}"
    path.write_bytes(data + b"\0" * 7)
    assert load_image(path) == (data + b"\0" * 7, kind, 40, 30)


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


def test_taxonomy_with_a_used_mapper_pickles_and_maps_the_same():
    """The mapper is cached on the taxonomy object, which Ray pickles to every worker: a copy must
    come back whole (the tables are rebuilt there, not shipped) and map as the original does."""
    import pickle

    tax = shipped("ade20k-150")
    raw = np.arange(151, dtype=np.uint8).reshape(1, -1)
    mapped = mapper_for(tax).map_array(raw)
    copy = pickle.loads(pickle.dumps(tax))
    assert copy == tax and mapper_for(copy) is not mapper_for(tax)
    assert np.array_equal(mapper_for(copy).map_array(raw), mapped)
    assert mapper_for(copy).target(1) == 0 and mapper_for(copy).target(0) == tax.ignore_index
    with pytest.raises(UnknownRawValues):
        mapper_for(copy).target(151)
