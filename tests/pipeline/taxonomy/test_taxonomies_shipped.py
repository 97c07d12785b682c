"""The shipped taxonomy folder: every file valid, the official class counts, every label described."""

from __future__ import annotations

import pytest

EXPECTED = {
    # training
    "ade20k-150": 150,
    "coco-panoptic-133": 133,
    "mapillary-vistas-v1.2": 66,
    "mapillary-vistas-v2.0": 124,
    "cityscapes": 19,
    "bdd100k": 19,
    "idd": 26,
    "sunrgbd": 37,
    "nyudv2-40": 40,  # fine-tuning set (the paper's Table 5)
    "openimages-v6-seg": 601,
    "objects365-v2": 365,
    # zero-shot evaluation
    "camvid": 11,
    "kitti": 19,
    "pascal-voc": 21,
    "pascal-context": 59,
    "scannet": 20,
    "wilddash": 19,
    "wilddash2": 26,
    "youtube-vis-unseen": 5,
}
EVAL_ONLY = {"camvid", "kitti", "pascal-voc", "pascal-context", "scannet", "wilddash", "wilddash2", "youtube-vis-unseen"}


@pytest.fixture(scope="module")
def taxset(shipped_taxonomies):
    return shipped_taxonomies


def test_exactly_the_shipped_datasets(taxset):
    assert set(taxset.datasets) == set(EXPECTED)


@pytest.mark.parametrize("name,count", sorted(EXPECTED.items()))
def test_class_count(taxset, name, count):
    tax = taxset.dataset(name)
    assert tax.num_classes == count
    assert tax.declared_classes == count
    assert (tax.role.value == "eval") == (name in EVAL_ONLY)


def test_every_used_label_is_described(taxset):
    for name, tax in taxset.datasets.items():
        for entry in tax.classes:
            label = taxset.registry.labels[entry.label]
            assert label.description.strip(), (name, entry.name)
            assert label.wikipedia.strip(), (name, entry.name)


def test_every_registry_label_is_used_by_some_dataset(taxset):
    unused = [key for key, users in taxset.label_usage().items() if not users]
    assert unused == []


def test_id_conventions(taxset):
    ade = taxset.dataset("ade20k-150")
    assert sorted(ade.raw_to_index()) == list(range(1, 151)) and ade.ignore_values == [0]
    objects365 = taxset.dataset("objects365-v2")
    assert sorted(objects365.raw_to_index()) == list(range(1, 366))
    assert objects365.supervision.value == "box"
    coco = taxset.dataset("coco-panoptic-133")
    assert max(coco.raw_to_index()) == 200
    cityscapes = taxset.dataset("cityscapes")
    covered = set(cityscapes.raw_to_index()) | set(cityscapes.ignore_values)
    assert set(range(34)) <= covered
    openimages = taxset.dataset("openimages-v6-seg")
    assert openimages.supervision.value == "coarse"
    assert all(isinstance(r, str) and r.startswith(("/m/", "/g/")) for r in openimages.raw_to_index())
    for name in ("mapillary-vistas-v1.2", "mapillary-vistas-v2.0"):
        tax = taxset.dataset(name)
        assert tax.classes[-1].ignore, f"{name}: the last class, Unlabeled, is marked ignore"


def test_no_label_registered_twice_under_two_keys(taxset):
    """Two keys with the same Wikipedia title and display name would split one concept in two."""
    seen = {}
    for key, label in taxset.registry.labels.items():
        ident = (label.wikipedia.lower(), label.name.lower())
        assert ident not in seen, f"{key} duplicates {seen[ident]}"
        seen[ident] = key


def test_wilddash2_follows_its_label_policy(taxset):
    """WildDash 2's 81 raw categories: 26 evaluated classes after the policy's merges, the rest ignored."""
    wd2 = taxset.dataset("wilddash2")
    table = wd2.raw_to_target()
    assert set(table) == set(range(81))  # every raw category is either a class or ignored
    index = {name: i for i, name in enumerate(wd2.class_names)}
    merged = {52: "sidewalk", 80: "sidewalk", 47: "rider", 48: "rider", 58: "motorcycle", 67: "ego vehicle",
              76: "road", 64: "road", 46: "pole", 56: "wall", 34: "pickup", 35: "van", 38: "road marking"}
    for raw, name in merged.items():
        assert table[raw] == index[name], raw
    for raw in (0, 4, 9, 29, 30, 60, 63, 66):  # unlabeled, static, parking, caravan, trailer, mountain, boat, banner
        assert raw in wd2.ignore_values and table[raw] == wd2.ignore_index
    assert wd2.splits["public"].index == "panoptic.json"


def test_kitti_evaluates_on_its_labelled_frames(taxset):
    kitti = taxset.dataset("kitti")
    assert list(kitti.splits) == ["training"]  # the 200 test frames have no public labels
    assert kitti.splits["training"].annotations == "training/semantic/*.png"
