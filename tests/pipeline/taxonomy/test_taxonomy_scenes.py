"""The street-scene, indoor and zero-shot evaluation taxonomies, as shipped.

Where a real annotation sample exists, the raw ids are checked against it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.taxonomy.lut import UNKNOWN, integer_lut

SCENES = ("mapillary-vistas-v1.2", "mapillary-vistas-v2.0", "cityscapes", "bdd100k", "idd", "sunrgbd",
          "camvid", "kitti", "pascal-voc", "pascal-context", "scannet", "wilddash")  # counts: test_taxonomies_shipped
EVAL_SETS = {"camvid", "kitti", "pascal-voc", "pascal-context", "scannet", "wilddash"}
CITYSCAPES_IGNORED = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30]


@pytest.fixture(scope="module")
def taxset(shipped_taxonomies):
    return shipped_taxonomies


def _scenes(taxset):
    return [taxset.dataset(name) for name in SCENES]


def test_every_dataset_has_its_role_and_supervision(taxset):
    for name in SCENES:
        tax = taxset.dataset(name)
        assert tax.role.value == ("eval" if name in EVAL_SETS else "train"), name
        assert tax.supervision.value == "dense", name


def test_every_label_these_datasets_use_is_registered(taxset):
    used = {label for tax in _scenes(taxset) for label in tax.class_labels}
    assert used <= set(taxset.registry.labels)


def test_registry_descriptions_are_short_sentences(taxset):
    for key, label in taxset.registry.labels.items():
        assert len(label.description) <= 220, key
        assert label.description[0].isupper() and label.description.endswith("."), key
    overrides = [c.description for t in _scenes(taxset) for c in t.classes if c.description]
    assert overrides and all(len(d) <= 220 and d.endswith(".") for d in overrides)


def test_no_two_classes_of_a_dataset_share_a_text(taxset):
    # Two classes with the same label and no description override would get the same embedding.
    for tax in _scenes(taxset):
        name = tax.name
        texts = Counter((c.label, c.description) for c in tax.classes)
        assert [t for t, n in texts.items() if n > 1] == [], name


def test_mapillary_v12_follows_the_release_config(taxset, real_fixtures):
    config = json.loads((real_fixtures / "mapillary" / "config_v1.1.json").read_text())["labels"]
    tax = taxset.dataset("mapillary-vistas-v1.2")
    assert [c.raw_id for c in tax.classes] == list(range(len(config)))
    assert tax.class_names == [entry["readable"] for entry in config]
    assert [list(c.color) for c in tax.classes] == [entry["color"] for entry in config]
    assert [c.name for c in tax.classes if c.ignore] == ["Unlabeled"]


def test_mapillary_v20_ids_and_unlabeled(taxset):
    tax = taxset.dataset("mapillary-vistas-v2.0")
    assert [c.raw_id for c in tax.classes] == list(range(124))
    assert tax.classes[-1].name == "Unlabeled" and tax.classes[-1].ignore
    assert [c.name for c in tax.classes if c.ignore] == ["Unlabeled"]
    assert tax.raw_to_target()[123] == tax.ignore_index
    # Every v1.2 concept that v2.0 kept under the same readable name keeps the same registry key.
    v12 = {c.name: c.label for c in taxset.dataset("mapillary-vistas-v1.2").classes}
    same = [c for c in tax.classes if c.name in v12]
    assert len(same) >= 50
    assert [c.name for c in same if c.label != v12[c.name]] == []


def test_mapillary_fixture_pixels_mean_the_same_in_both_versions(taxset, real_fixtures):
    """The same crop is labelled in v1.2 and v2.0: each pixel's registry key must agree."""
    stem = "__CRyFzoDOXn6unQ6a3DnQ.png"
    keys = {}
    for version in ("v1.2", "v2.0"):
        image = Image.open(real_fixtures / "mapillary" / version / stem)
        assert image.mode == "P"
        tax = taxset.dataset(f"mapillary-vistas-{version}")
        index = integer_lut(tax, 256)[np.asarray(image)]
        assert (index != UNKNOWN).all()
        keys[version] = np.array(tax.class_labels, dtype=object)[index]
    assert (keys["v1.2"] == keys["v2.0"]).mean() > 0.99
    assert set(np.unique(keys["v1.2"])) == {"building", "street_light", "pole"}


def test_mapillary_v12_fixture_palette_matches_class_colours(taxset, real_fixtures):
    image = Image.open(real_fixtures / "mapillary" / "v1.2" / "__CRyFzoDOXn6unQ6a3DnQ.png")
    palette = image.getpalette()
    tax = taxset.dataset("mapillary-vistas-v1.2")
    for value in np.unique(np.asarray(image)):
        assert tuple(palette[3 * value : 3 * value + 3]) == tax.classes[value].color


def test_cityscapes_accounts_for_every_label_id(taxset):
    tax = taxset.dataset("cityscapes")
    raw = [r for c in tax.classes for r in c.all_raw_ids]
    assert len(raw) == 19
    assert sorted(raw + [v for v in tax.ignore_values if v != -1]) == list(range(34))
    assert -1 in tax.ignore_values
    names = dict(zip(tax.class_names, tax.class_labels))
    assert names["person"] != names["rider"] and names["terrain"] != names["vegetation"]


def test_cityscapes_label_ids_agree_with_train_ids(taxset, real_fixtures):
    """labelIds mapped through the YAML must give the official labelTrainIds (class index = trainId)."""
    gt = real_fixtures / "cityscapes" / "gtFine"
    label_ids = np.asarray(Image.open(gt / "frankfurt_000000_000294_gtFine_labelIds.png"))
    train_ids = np.asarray(Image.open(gt / "frankfurt_000000_000294_gtFine_labelTrainIds.png"))
    lut = integer_lut(taxset.dataset("cityscapes"), 256)
    mapped = lut[label_ids]
    assert (mapped != UNKNOWN).all()
    # The fixture's two PNGs were downscaled separately, so a few boundary pixels differ.
    assert (mapped == train_ids).mean() > 0.98
    for value in np.unique(label_ids):
        majority = Counter(train_ids[label_ids == value].tolist()).most_common(1)[0][0]
        assert lut[value] == majority, value


@pytest.mark.parametrize("name", ["kitti", "wilddash"])
def test_cityscapes_labelid_eval_sets_match_cityscapes(taxset, name):
    city, other = taxset.dataset("cityscapes"), taxset.dataset(name)
    assert other.format == "cityscapes"
    assert [(c.raw_id, c.name, c.label) for c in other.classes] == [
        (c.raw_id, c.name, c.label) for c in city.classes
    ]
    assert sorted(other.ignore_values) == sorted(city.ignore_values)


def test_bdd100k_uses_train_ids_with_cityscapes_keys(taxset):
    bdd = taxset.dataset("bdd100k")
    assert [c.raw_id for c in bdd.classes] == list(range(19))
    assert bdd.class_labels == taxset.dataset("cityscapes").class_labels
    assert bdd.ignore_values == [255]


def test_idd_polygon_names_cover_every_level3_id(taxset):
    idd = taxset.dataset("idd")
    assert [c.raw_id for c in idd.classes] == list(range(26)) and idd.ignore_values == [255]
    table = idd.format_options["polygon_label_to_level3"]
    assert len(table) == 40
    assert set(table.values()) == set(range(26)) | {255}
    for void in ("unlabeled", "ego vehicle", "rectification border", "out of roi", "license plate"):
        assert table[void] == 255
    # A name that is also a level-3 class name maps to that class.
    for index, name in enumerate(idd.class_names):
        if name in table:
            assert table[name] == index, name


def _number(path: Path) -> int:
    return int(re.search(r"\d+", path.stem).group())


def test_sunrgbd_fixture_labels_and_number_pairing(taxset, real_fixtures):
    tax = taxset.dataset("sunrgbd")
    assert [c.raw_id for c in tax.classes] == list(range(37)) and tax.ignore_values == [255]
    assert tax.format_options["pair_by"] == "number" and "shift" in tax.notes
    label_path = next((real_fixtures / "sunrgbd" / "label37").glob("*.png"))
    image_path = next((real_fixtures / "sunrgbd" / "image").glob("*.jpg"))
    assert _number(label_path) == _number(image_path)
    labels = np.asarray(Image.open(label_path))
    assert Image.open(image_path).size == labels.shape[::-1]
    assert (integer_lut(tax, 256)[labels] != UNKNOWN).all()


def test_scannet_covers_nyu40_exactly(taxset):
    tax = taxset.dataset("scannet")
    raw = [c.raw_id for c in tax.classes]
    assert raw == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
    assert sorted(raw + tax.ignore_values) == list(range(41))
    # The 37 SUN RGB-D classes are NYU40 ids 1..37 shifted by one: the shared ids mean the same.
    sun = taxset.dataset("sunrgbd").classes
    for c in tax.classes:
        if c.raw_id <= 37:
            assert sun[c.raw_id - 1].label == c.label, c.name


@pytest.mark.parametrize(
    ("name", "raw_ids", "ignored"),
    [
        ("camvid", list(range(11)), [11]),
        ("pascal-voc", list(range(21)), [255]),
        ("pascal-context", list(range(1, 60)), [0]),
    ],
)
def test_index_png_eval_sets(taxset, name, raw_ids, ignored):
    tax = taxset.dataset(name)
    assert tax.format == "png_folder" and tax.format_options["mode"] == "index"
    assert [c.raw_id for c in tax.classes] == raw_ids
    assert tax.ignore_values == ignored


def test_same_concept_same_key_across_datasets(taxset):
    def key(dataset, name):
        return dict(zip(taxset.dataset(dataset).class_names, taxset.dataset(dataset).class_labels))[name]

    assert key("pascal-voc", "background") == "background"
    assert key("sunrgbd", "sofa") == key("scannet", "sofa") == key("pascal-voc", "sofa") == "couch"
    assert key("mapillary-vistas-v1.2", "Person") == key("cityscapes", "person") == key("idd", "person")
    assert key("mapillary-vistas-v1.2", "On Rails") == key("cityscapes", "train")
    assert key("mapillary-vistas-v1.2", "Traffic Sign (Front)") == key("cityscapes", "traffic sign")
    assert (
        key("mapillary-vistas-v1.2", "Bicyclist") == key("camvid", "Bicyclist") != key("cityscapes", "rider")
    )
