"""Index entries that would read outside the dataset root, duplicate ids, entries missing their id, and a
UTF-8 byte-order mark: each bad entry is quarantined naming the index and the value, the rest converts,
and a BOM means nothing to any index reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from support.generated import jpeg, png, write_openimages
from support.layout import place, shipped
from support.readers import outcome

BOM = b"\xef\xbb\xbf"




# --- Objects365 -------------------------------------------------------------------------------------
def o365_index(root: Path, tax, images: list[dict], annotations: list[dict], prefix: bytes = b"") -> Path:
    index = root / tax.splits["val"].index
    index.parent.mkdir(parents=True, exist_ok=True)
    cats = [{"id": c.raw_id, "name": c.name} for c in tax.classes]
    index.write_bytes(prefix + json.dumps({"images": images, "annotations": annotations,
                                           "categories": cats}).encode())
    return index


def o365_image(root: Path, tax, n: int, file_name: str | None = None, size=(60, 40)) -> dict:
    name = f"objects365_v2_{n:08d}.jpg"
    place(root, tax.splits["val"].images, name, data=jpeg(*size, seed=n))
    return {"id": n, "file_name": file_name or name, "width": size[0], "height": size[1]}


def box(n: int, image_id, bbox=(1, 2, 10, 10)) -> dict:
    return {"id": n, "image_id": image_id, "category_id": 1, "bbox": list(bbox), "iscrowd": 0}


def test_objects365_file_name_outside_the_root_is_quarantined_not_read(tmp_path):
    tax = shipped("objects365-v2")
    root = tmp_path / "root"
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg(60, 40, 9))
    images = [o365_image(root, tax, 1), {"id": 2, "file_name": "../../secret.jpg"},
              {"id": 3, "file_name": str(outside)}]
    index = o365_index(root, tax, images, [box(1, 1), box(2, 2), box(3, 3)])
    good, bad = outcome(tax, root, "val")
    assert list(good) == ["objects365_v2_00000001"]
    assert len(bad) == 2
    for e, value in zip(sorted(bad.values(), key=lambda e: e.reason), ["'../../secret.jpg'", repr(str(outside))]):
        assert e.path == str(index) and value in e.reason


def test_objects365_entry_with_null_id_or_annotation_without_image_id_is_quarantined(tmp_path):
    tax = shipped("objects365-v2")
    images = [o365_image(tmp_path, tax, 1), o365_image(tmp_path, tax, 2) | {"id": None}]
    no_image = box(3, 1)
    del no_image["image_id"]
    index = o365_index(tmp_path, tax, images, [box(1, 1), box(2, 2), no_image])
    good, bad = outcome(tax, tmp_path, "val")
    assert list(good) == ["objects365_v2_00000001"] and len(good["objects365_v2_00000001"].boxes) == 1
    assert "has id None" in bad["objects365_v2_00000002"].reason
    assert "annotations[2]" in bad["annotations-without-image-id"].reason
    assert {e.path for e in bad.values()} == {str(index)}


def test_objects365_entries_sharing_a_file_name_are_quarantined_naming_both(tmp_path):
    tax = shipped("objects365-v2")
    one = o365_image(tmp_path, tax, 1)
    images = [one, {**one, "id": 7}, o365_image(tmp_path, tax, 2)]
    o365_index(tmp_path, tax, images, [box(1, 1), box(2, 7), box(3, 2)])
    good, bad = outcome(tax, tmp_path, "val")
    assert list(good) == ["objects365_v2_00000002"]
    assert len(bad) == 2
    assert all("'objects365_v2_00000001'" in e.reason and "ambiguous" in e.reason for e in bad.values())


def test_objects365_index_with_a_bom_is_read(tmp_path):
    tax = shipped("objects365-v2")
    o365_index(tmp_path, tax, [o365_image(tmp_path, tax, 1)], [box(1, 1)], prefix=BOM)
    good, bad = outcome(tax, tmp_path, "val")
    assert list(good) == ["objects365_v2_00000001"] and not bad


# --- COCO panoptic ----------------------------------------------------------------------------------
def panoptic(root: Path, images: list[dict], annotations: list[dict]) -> tuple:
    tax = shipped("coco-panoptic-133")
    spec = tax.splits["val2017"]
    category = next(c.raw_id for c in tax.classes if not c.ignore)
    for im in images:
        name = Path(im["file_name"]).name
        place(root, spec.images, name, data=jpeg(8, 6, im["id"]))
    for ann in annotations:
        ids = np.full((6, 8), 5, np.int64)
        rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
        place(root, spec.annotations, Path(ann["file_name"]).name, data=png(rgb))
        ann["segments_info"] = [{"id": 5, "category_id": ann.pop("category", category)}]
    index = root / spec.index
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    return tax, index


def test_panoptic_duplicate_image_id_quarantines_both_images(tmp_path):
    images = [{"id": 5, "file_name": "000000000005.jpg"}, {"id": 5, "file_name": "000000000006.jpg"},
              {"id": 7, "file_name": "000000000007.jpg"}]
    anns = [{"image_id": 5, "file_name": "000000000005.png"}, {"image_id": 7, "file_name": "000000000007.png"}]
    tax, index = panoptic(tmp_path, images, anns)
    good, bad = outcome(tax, tmp_path, "val2017")
    assert list(good) == ["000000000007"]
    assert sorted(bad) == ["000000000005", "000000000006"]
    for e in bad.values():
        assert e.path == str(index) and "'000000000005.jpg', '000000000006.jpg'" in e.reason


def test_panoptic_file_names_outside_the_root_are_quarantined(tmp_path):
    root = tmp_path / "root"
    images = [{"id": 1, "file_name": "../../../x.jpg"}, {"id": 2, "file_name": "000000000002.jpg"},
              {"id": 3, "file_name": "000000000003.jpg"}]
    anns = [{"image_id": 1, "file_name": "000000000001.png"}, {"image_id": 2, "file_name": "/etc/000000000002.png"},
            {"image_id": 3, "file_name": "000000000003.png"}]
    tax, index = panoptic(root, images, anns)
    good, bad = outcome(tax, root, "val2017")
    assert list(good) == ["000000000003"]
    assert "'../../../x.jpg'" in bad["x"].reason and "'/etc/000000000002.png'" in bad["000000000002"].reason
    assert {e.path for e in bad.values()} == {str(index)}


def test_panoptic_entries_sharing_a_file_name_are_quarantined_naming_both(tmp_path):
    images = [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000001.jpg"},
              {"id": 3, "file_name": "000000000003.jpg"}]
    anns = [{"image_id": i, "file_name": f"00000000000{i}.png"} for i in (1, 2, 3)]
    tax, _ = panoptic(tmp_path, images, anns)
    good, bad = outcome(tax, tmp_path, "val2017")
    assert list(good) == ["000000000003"] and len(bad) == 2
    assert all("ambiguous" in e.reason and "000000000002.png" in e.reason for e in bad.values())


# --- OpenImages -------------------------------------------------------------------------------------
def test_openimages_csv_with_a_bom_is_read(tmp_path):
    tax = shipped("openimages-v6-seg")
    expected = write_openimages(tax, tmp_path, "validation")
    index = tmp_path / tax.splits["validation"].index
    index.write_bytes(BOM + index.read_bytes())
    good, bad = outcome(tax, tmp_path, "validation")
    assert sorted(good) == sorted(expected) and not bad


# --- plain-text id lists ----------------------------------------------------------------------------
def test_id_list_with_a_bom_names_its_first_id(tmp_path):
    """Pascal VOC's ImageSets list saved by a Windows editor: the first id is '2007_000032', not
    '\\ufeff2007_000032' (which would report that image as missing)."""
    tax = shipped("pascal-voc")
    spec = tax.splits["train"]
    for stem in ("2007_000032", "2007_000033"):
        place(tmp_path, spec.images, f"{stem}.jpg", data=jpeg(8, 6))
        place(tmp_path, spec.annotations, f"{stem}.png", data=png(np.zeros((6, 8), np.uint8)))
    index = tmp_path / spec.index
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_bytes(BOM + b"2007_000032\n2007_000033\n")
    good, bad = outcome(tax, tmp_path, "train")
    assert sorted(good) == ["2007_000032", "2007_000033"] and not bad
