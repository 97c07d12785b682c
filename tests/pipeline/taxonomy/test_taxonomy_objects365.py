"""The shipped Objects365 v2 taxonomy: official ids and names, its labels, and that the
objects365 reader maps real category ids through it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def loaded(shipped_taxonomies):
    """The dataset as shipped (the whole folder validates), with the registry."""
    return shipped_taxonomies.dataset("objects365-v2"), shipped_taxonomies.registry


def test_ids_are_the_official_1_to_365_in_order(loaded):
    tax, _ = loaded
    assert tax.num_classes == tax.declared_classes == 365
    assert [c.raw_id for c in tax.classes] == list(range(1, 366))
    assert tax.raw_to_index() == {raw: raw - 1 for raw in range(1, 366)}
    # 365 classes do not fit uint8 with 255 kept for ignore.
    assert tax.label_dtype == "uint16" and tax.ignore_index == 65535
    assert tax.supervision.value == "box" and tax.format == "objects365" and tax.role.value == "train"


@pytest.mark.parametrize(
    "raw_id, name",
    [
        (1, "Person"), (2, "Sneakers"), (4, "Other Shoes"), (38, "Moniter/TV"), (53, "Bakset"),
        (137, "Duck"), (197, "Cigar/Cigarette "), (241, "Deer"), (309, "Formula 1 "),
        (340, "French"), (363, "Cosmetics Mirror"), (365, "Table Tennis "),
    ],
)
def test_names_keep_the_json_spelling(loaded, raw_id, name):
    tax, _ = loaded
    assert tax.classes[raw_id - 1].name == name


def test_splits_follow_the_release_layout(loaded):
    tax, _ = loaded
    assert set(tax.splits) == {"train", "val"}
    assert tax.splits["train"].index == "annotations/zhiyuan_objv2_train.json"
    # The official archives unpack beside annotations/, which is also mmdetection's layout.
    assert (tax.splits["train"].images, tax.splits["val"].images) == ("train", "val")
    assert "not" in tax.notes and "official" in tax.notes  # says what could not be verified


def test_fine_grained_classes_keep_their_own_labels(loaded):
    tax, _ = loaded
    by_name = {c.name: c.label for c in tax.classes}
    shoes = ["Sneakers", "Other Shoes", "Leather Shoes", "High Heels", "Boots", "Sandals", "Slippers",
             "Skating and Skiing shoes"]
    assert len({by_name[n] for n in shoes}) == len(shoes)
    balls = ["Soccer", "Baseball", "Basketball", "Volleyball", "Tennis", "Golf Ball", "Table Tennis ",
             "Billards", "American Football", "Other Balls"]
    assert len({by_name[n] for n in balls}) == len(balls)
    trucks = ["Truck", "Pickup Truck", "Heavy Truck", "Fire Truck", "Van", "SUV", "Car", "Sports Car"]
    assert len({by_name[n] for n in trucks}) == len(trucks)
    # Shared concepts reuse the common keys, so datasets merge on them.
    assert by_name["Person"] == "person" and by_name["Car"] == "car" and by_name["Duck"] == "duck"
    assert len(set(tax.class_labels)) == 365  # no two classes collapse onto one label


def test_catch_all_classes_narrow_their_text(loaded):
    """'Other X' classes share a general key but say, per dataset, what they exclude."""
    tax, _ = loaded
    for name in ("Other Shoes", "Other Fish", "Other Balls", "Wild Bird"):
        entry = next(c for c in tax.classes if c.name == name)
        assert entry.description is not None, name
        assert "none of" in entry.description or "not covered" in entry.description, name


def test_used_labels_are_well_written(loaded):
    tax, registry = loaded
    for key in set(tax.class_labels):
        assert len(registry.labels[key].description) <= 220, key
    for entry in tax.classes:
        assert entry.description is None or len(entry.description) <= 220, entry.name


def test_reader_maps_json_category_ids_through_the_taxonomy(loaded, tmp_path):
    """A tiny dataset in the release layout: file_name as the JSON writes it (images/v1/patch8/...)
    while the image sits at train/patch8/... (the official archives, mmdetection); category ids come out as class indices."""
    from support.generated import jpeg, write

    from pipeline.convert.layouts.coco import CocoImage
    from pipeline.convert.readers import get_reader

    tax, _ = loaded
    boxes = [
        {"id": 1, "image_id": 420917, "category_id": 137, "bbox": [2.5, 3.0, 10.0, 8.0], "iscrowd": 0},
        {"id": 2, "image_id": 420917, "category_id": 365, "bbox": [30.0, 20.0, 20.0, 20.0], "iscrowd": 0},
    ]
    name = "images/v1/patch8/objects365_v1_00420917.jpg"
    [image] = write(tax, tmp_path, "train", [CocoImage(420917, name, 40, 30, jpeg(40, 30), boxes)]).values()
    assert image == tmp_path / "train" / "patch8" / "objects365_v1_00420917.jpg"

    items = list(get_reader("objects365").plan(tax, tmp_path, "train"))
    assert len(items) == 1
    sample = get_reader("objects365").read(tax, items[0])
    assert (sample.width, sample.height) == (40, 30)
    # Duck (137) -> index 136; Table Tennis (365) -> 364, its box clipped to the image.
    assert sample.boxes == [[2, 3, 13, 11, 136], [30, 20, 40, 30, 364]]
