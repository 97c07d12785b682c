"""Readers for formats with no real sample, on small fixtures written in the real on-disk layout
(tests/fixtures_gen), checked against truth the generators work out independently."""

from __future__ import annotations

import numpy as np
from fixtures_gen.generated import write_bdd100k, write_idd, write_objects365, write_openimages
from fixtures_gen.layout import shipped

from pipeline.convert.readers import FORMATS, cocojson, get_reader


def read_all(tax, root, split):
    reader = get_reader(tax.format)
    items = list(reader.plan(tax, root, split))
    return items, {item.key: reader.read(tax, item) for item in items}


def test_registry_covers_every_known_format():
    assert all(get_reader(name) is FORMATS[name] and FORMATS[name].name == name for name in FORMATS)
    assert all(callable(f._reader().plan) and callable(f._reader().read) for f in FORMATS.values())


def test_openimages_masks_resized_composed_smaller_wins(tmp_path):
    tax = shipped("openimages-v6-seg")
    split = "validation" if "validation" in tax.splits else next(iter(tax.splits))
    expected = write_openimages(tax, tmp_path, split)
    items, samples = read_all(tax, tmp_path, split)
    assert [i.key for i in items] == sorted(expected)
    for key, truth in expected.items():
        sample = samples[key]
        assert sample.label.dtype == np.dtype(tax.label_dtype)
        assert (sample.width, sample.height) == truth.shape[::-1]
        assert np.array_equal(sample.label, truth)
        assert sample.image_ext == "jpg"
    assert (samples["0a1b2c3d4e5f6789"].label == tax.ignore_index).any()  # uncovered strip


def test_objects365_boxes_clipped_degenerate_dropped_json_read_once(tmp_path, monkeypatch):
    tax = shipped("objects365-v2")
    expected = write_objects365(tax, tmp_path, "train")
    calls = []
    real_load = cocojson.load_json
    monkeypatch.setattr(cocojson, "load_json", lambda path: calls.append(path) or real_load(path))
    reader = get_reader("objects365")
    items = list(reader.plan(tax, tmp_path, "train"))
    assert len(calls) == 1
    assert [i.key for i in items] == sorted(expected)  # the image with no boxes is left out
    samples = {i.key: reader.read(tax, i) for i in items}
    assert len(calls) == 1  # read() uses WorkItem.extra, never the JSON
    for key, boxes in expected.items():
        assert samples[key].label is None
        assert samples[key].boxes == boxes
    assert (samples["objects365_v1_00000001"].width, samples["objects365_v1_00000001"].height) == (100, 80)


def test_bdd100k_masks(tmp_path):
    tax = shipped("bdd100k")
    raw = write_bdd100k(tax, tmp_path, "val")
    items, samples = read_all(tax, tmp_path, "val")
    assert [i.key for i in items] == sorted(raw)
    table = tax.raw_to_target()
    for key, mask in raw.items():
        expected = np.vectorize(table.__getitem__)(mask)
        assert np.array_equal(samples[key].label, expected)
        assert set(np.unique(samples[key].label).tolist()) == set(range(tax.num_classes)) | {255}


def test_idd_level3_png_and_polygons(tmp_path):
    tax = shipped("idd")
    raw = write_idd(tax, tmp_path, "train")
    items, samples = read_all(tax, tmp_path, "train")
    assert [i.key for i in items] == ["0_000001", "0_000002"]  # IDD numbers frames per folder
    assert items[0].annotation.endswith("_gtFine_labellevel3Ids.png")
    assert items[1].annotation.endswith("_gtFine_polygons.json")
    table = tax.raw_to_target()
    for key, level3 in raw.items():
        assert np.array_equal(samples[key].label, np.vectorize(table.__getitem__)(level3)), key
    assert samples["0_000002"].image_ext == "png"


def test_plan_is_sorted_deterministic_and_picklable(tmp_path):
    import pickle
    import re

    tax = shipped("objects365-v2")
    write_objects365(tax, tmp_path / "o", "train")
    idd = shipped("idd")
    write_idd(idd, tmp_path / "i", "train")
    for t, root in ((tax, tmp_path / "o"), (idd, tmp_path / "i")):
        reader = get_reader(t.format)
        first = list(reader.plan(t, root, "train"))
        assert first == list(reader.plan(t, root, "train"))
        keys = [i.key for i in first]
        assert keys == sorted(set(keys))
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys)
        assert pickle.loads(pickle.dumps(first)) == first
        assert pickle.loads(pickle.dumps(reader)) is reader
