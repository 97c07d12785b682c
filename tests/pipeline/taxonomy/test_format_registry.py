"""The format registry (pipeline/convert/readers/__init__.py) against every shipped dataset YAML and every
format: a tiny fixture written by the format's registry layout writer in the YAML's own split layout
(tests/support/every_taxonomy.py) is planned and read for every split and must equal the truth the
builder worked out from the YAML's raw ids; every format has a layout writer and a builder, plans are
deterministic and picklable, and format_options a reader would ignore are refused."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from support.every_taxonomy import BUILDERS, NoBuilder, dense_pairs, expected_labels
from support.generated import jpeg, write_idd, write_objects365
from support.layout import TAXONOMIES, shipped, with_changes
from support.readers import load_yaml, read_all

from pipeline.convert.layouts.paired import Pair
from pipeline.convert.readers import FORMATS, get_reader
from pipeline.taxonomy.load import dataset_paths


def test_registry_covers_every_known_format():
    assert all(get_reader(name) is FORMATS[name] and FORMATS[name].name == name for name in FORMATS)
    assert all(callable(f._reader().plan) and callable(f._reader().read) for f in FORMATS.values())


def test_every_format_has_a_layout_writer():
    missing = [f.name for f in FORMATS.values() if not f.layout]
    assert not missing, f"formats without a layout writer (Format.layout): {missing}"
    assert all(callable(f.layout_writer()) for f in FORMATS.values())


def test_layout_writer_hard_links_repeated_content(tmp_path):
    """The benchmarks repeat template samples: the same objects given again become hard links."""
    tax, raw, image = shipped("ade20k-150"), np.array([[0, 1, 2], [3, 4, 150]], np.uint8), jpeg(3, 2)
    pairs = [Pair("ADE_val_1", image, raw), Pair("ADE_val_2", image, raw), Pair("ADE_val_3", jpeg(3, 2, 1), raw.copy())]
    FORMATS["ade20k"].write_layout(tax, tmp_path, "validation", pairs)
    items, samples = read_all(tax, tmp_path, "validation")
    assert Path(items[0].image).samefile(items[1].image) and Path(items[0].annotation).samefile(items[1].annotation)
    assert [(Path(i.image).stat().st_nlink, Path(i.annotation).stat().st_nlink) for i in items] == [(2, 2)] * 2 + [(1, 1)]
    assert all(np.array_equal(s.label, expected_labels(tax, raw)) for s in samples)


def test_layout_writer_refuses_another_formats_taxonomy(tmp_path):
    with pytest.raises(AssertionError, match="is 'cityscapes', not 'idd'"):
        FORMATS["idd"].write_layout(shipped("cityscapes"), tmp_path, "val", [])


def test_plan_is_sorted_deterministic_and_picklable(tmp_path):
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


DATASET_YAMLS = dataset_paths(TAXONOMIES)


def test_every_dataset_yaml_is_found():
    names = {p.name for p in DATASET_YAMLS}
    assert len(names) >= 17 and not any(n.startswith("labels") for n in names)
    assert {"scannet.yaml", "pascal-voc.yaml", "idd.yaml", "sunrgbd.yaml"} <= names


def test_every_known_format_has_a_fixture_builder():
    assert set(BUILDERS) == set(FORMATS)


@pytest.mark.parametrize("path", DATASET_YAMLS, ids=lambda p: p.stem)
def test_every_split_converts_as_the_fixture_intends(path, tmp_path):
    round_trip(load_yaml(path), tmp_path, path.name)


@pytest.mark.parametrize("supervision", ["dense", "box"])
def test_coco_instances_round_trips(supervision, tmp_path):
    """No shipped YAML uses coco_instances: the COCO panoptic one, re-labelled."""
    tax = with_changes(shipped("coco-panoptic-133"), tmp_path, name=f"coco-instances-{supervision}",
                       format="coco_instances", supervision=supervision,
                       splits={"val": {"images": "val2017", "index": "annotations/instances_val2017.json"}})
    round_trip(tax, tmp_path / "root", f"coco_instances ({supervision})")


def test_every_format_round_trips_through_its_layout_writer():
    """The round trips here (write through the registry's writer -> plan -> read -> compare) reach
    every entry of FORMATS: one per shipped YAML, plus coco_instances above."""
    assert {load_yaml(p).format for p in DATASET_YAMLS} | {"coco_instances"} == set(FORMATS)


def round_trip(tax, root, name: str) -> None:
    builder = BUILDERS.get(tax.format)
    if builder is None:
        pytest.fail(
            f"{name}: format {tax.format!r} has no fixture builder; add one to BUILDERS in "
            "tests/support/every_taxonomy.py"
        )
    try:  # every split first: a release's splits share folders (Pascal VOC's JPEGImages)
        truth = {split: builder(tax, root, split, n) for n, split in enumerate(tax.splits)}
    except NoBuilder as e:
        pytest.fail(f"{name}: {e}")
    reader = get_reader(tax.format)
    for split, expected in truth.items():
        where = f"{name} split {split!r}"
        assert expected, f"{where}: the builder wrote nothing to check"
        items = list(reader.plan(tax, root, split))
        assert [i.key for i in items] == sorted(expected), where
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i.key) for i in items), where
        assert pickle.loads(pickle.dumps(items)) == items
        for item in items:
            sample, want = reader.read(tax, item), expected[item.key]
            assert sample.key == item.key
            assert sample.image_bytes == want.image.read_bytes(), f"{where} {item.key}: wrong image"
            if want.label is None:
                assert sample.label is None and sample.boxes == want.boxes, f"{where} {item.key}"
                continue
            assert sample.label.dtype == np.dtype(tax.label_dtype), where
            assert (sample.height, sample.width) == want.label.shape, where
            assert np.array_equal(sample.label, want.label), f"{where} {item.key}: labels differ"


def test_a_format_without_builder_fails_clearly(tmp_path, monkeypatch):
    """What the parametrised test does for a YAML whose format has no builder."""
    monkeypatch.delitem(BUILDERS, "sunrgbd")
    with pytest.raises(pytest.fail.Exception, match="sunrgbd.yaml: format 'sunrgbd' has no fixture builder"):
        test_every_split_converts_as_the_fixture_intends(TAXONOMIES / "sunrgbd.yaml", tmp_path)


def test_generic_builder_covers_every_class(tmp_path):
    """The dense fixture holds every raw id, so the comparison above reaches every class."""
    tax = shipped("mapillary-vistas-v2.0")
    truth = dense_pairs(tax, tmp_path, "validation", 0)
    seen = set(np.unique(np.concatenate([t.label.ravel() for t in truth.values()])).tolist())
    # The last class, Unlabeled, is marked ignore.
    assert seen == set(range(tax.num_classes - 1)) | {tax.ignore_index}


# --- format_options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", DATASET_YAMLS, ids=lambda p: p.stem)
def test_every_format_option_is_read_by_the_reader(path):
    tax = load_yaml(path)
    unread = set(tax.format_options) - FORMATS[tax.format].options
    assert not unread, f"{path.name}: format_options {sorted(unread)} are not read by the {tax.format} reader"


def test_unknown_format_option_is_refused(tmp_path):
    # `ssiw taxonomy validate` refuses it (issue #19); a taxonomy built in code meets the reader's own check.
    with pytest.raises(AssertionError, match=r"'format_options.annotation_sufix', message=\"means nothing to the 'cityscapes'"):
        with_changes(shipped("cityscapes"), tmp_path, format_options={"annotation_sufix": "_gtFine_labelIds"})
    tax = shipped("cityscapes").model_copy(
        update={"format_options": {"annotation_sufix": "_gtFine_labelIds", "image_suffix": "_leftImg8bit"}})
    with pytest.raises(ValueError, match=r"cityscapes: format_options \['annotation_sufix'\] mean nothing"):
        list(get_reader("cityscapes").plan(tax, tmp_path, "val"))
