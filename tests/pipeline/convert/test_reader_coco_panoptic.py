"""The coco_panoptic reader: real samples (pixel counts equal segment areas), segment ids through all three
channels against a per-pixel lookup, and a malformed index or a segment id missing from segments_info."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from support.generated import jpeg, png
from support.layout import place, shipped
from support.readers import (
    bad,
    check_counts,
    check_sample,
    coco_root,
    read_all,
    read_one,
)

from pipeline.convert.readers import BadSample, get_reader


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


def _panoptic(tmp_path: Path, index_text: str, png_array: np.ndarray):
    tax = shipped("coco-panoptic-133")
    spec = tax.splits["val2017"]
    place(tmp_path, spec.images, "000000000001.jpg", data=jpeg(png_array.shape[1], png_array.shape[0]))
    place(tmp_path, spec.annotations, "000000000001.png", data=png(png_array))
    place(tmp_path, str(Path(spec.index).parent), Path(spec.index).name, data=index_text.encode())
    return tax, tmp_path / spec.index


def _panoptic_index(segment_ids: list[int]) -> str:
    return json.dumps(
        {
            "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 8, "height": 6}],
            "annotations": [
                {
                    "image_id": 1,
                    "file_name": "000000000001.png",
                    "segments_info": [{"id": s, "category_id": 1, "area": 1} for s in segment_ids],
                }
            ],
            "categories": [],
        }
    )


def test_malformed_panoptic_json(tmp_path):
    tax, index = _panoptic(tmp_path, _panoptic_index([5])[:-10], np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(BadSample) as info:
        list(get_reader("coco_panoptic").plan(tax, tmp_path, "val2017"))
    assert info.value.path == str(index) and "malformed JSON" in info.value.reason


def test_panoptic_segment_missing_from_segments_info(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:3, :, 0] = 5
    rgb[3:, :, 1] = 1  # segment id 256: not listed
    tax, _ = _panoptic(tmp_path, _panoptic_index([5]), rgb)
    [item] = list(get_reader("coco_panoptic").plan(tax, tmp_path, "val2017"))
    err = bad(tax, item)
    assert err.path == item.annotation and "segment id(s) [256]" in err.reason


def test_coco_panoptic_category_pixel_counts_equal_segment_areas(real_fixtures, tmp_path):
    tax = shipped("coco-panoptic-133")
    root = coco_root(real_fixtures, tmp_path, tax, "val2017")
    items, samples = read_all(tax, root, "val2017")
    assert [i.key for i in items] == ["000000142238", "000000439180"]
    meta = json.loads((real_fixtures / "coco-panoptic/panoptic_examples.json").read_text())
    table = tax.raw_to_target()
    for sample, ann in zip(samples, sorted(meta["annotations"], key=lambda a: a["file_name"])):
        expected = Counter()
        for seg in ann["segments_info"]:
            expected[table[seg["category_id"]]] += seg["area"]
        got = Counter(dict(zip(*[a.tolist() for a in np.unique(sample.label, return_counts=True)])))
        void = got.pop(255, 0)
        assert got == expected
        assert void == sample.width * sample.height - sum(expected.values())
        check_sample(sample, real_fixtures / "coco-panoptic/images" / f"{sample.key}.jpg")
