"""Bad input never becomes a silently wrong label: each case is a BadSample naming the file and why."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_gen.generated import jpeg, png, write_idd, write_objects365, write_openimages
from fixtures_gen.layout import place, shipped, with_changes

from pipeline.convert.readers import BadSample, get_reader


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


def bad(tax, item) -> BadSample:
    with pytest.raises(BadSample) as info:
        get_reader(tax.format).read(tax, item)
    return info.value


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
    assert err.path == item.image and err.reason == "missing file"
    assert item.image.endswith("images/validation/ADE_val_1.jpg")


def test_missing_label_file_after_planning(tmp_path):
    tax, item = ade_root(tmp_path, GOOD_LABEL, jpeg(32, 24))
    Path(item.annotation).unlink()
    err = bad(tax, item)
    assert err.path == item.annotation and err.reason == "missing file"


def test_rgb_png_where_index_png_expected(tmp_path):
    tax, item = ade_root(tmp_path, png(np.zeros((24, 32, 3), np.uint8)), jpeg(32, 24))
    err = bad(tax, item)
    assert err.path == item.annotation and "'RGB'" in err.reason


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


def test_objects365_unknown_category(tmp_path):
    tax = shipped("objects365-v2")
    write_objects365(tax, tmp_path, "val")
    index = tmp_path / tax.splits["val"].index
    data = json.loads(index.read_text())
    data["annotations"][0]["category_id"] = 9999
    index.write_text(json.dumps(data))
    items = list(get_reader("objects365").plan(tax, tmp_path, "val"))
    err = bad(tax, items[0])
    assert err.path == str(index) and "9999" in err.reason


def test_idd_malformed_and_unknown_polygon_json(tmp_path):
    tax = shipped("idd")
    write_idd(tax, tmp_path, "train")
    items = list(get_reader("idd").plan(tax, tmp_path, "train"))
    poly = Path(items[1].annotation)
    data = json.loads(poly.read_text())
    data["objects"][0]["label"] = "flying saucer"
    poly.write_text(json.dumps(data))
    err = bad(tax, items[1])
    assert err.path == str(poly) and "flying saucer" in err.reason
    poly.write_text('{"imgHeight": 30, "imgWidth": ')
    err = bad(tax, items[1])
    assert err.path == str(poly) and "malformed JSON" in err.reason


def _openimages(tmp_path: Path):
    tax = shipped("openimages-v6-seg")
    split = next(iter(tax.splits))
    write_openimages(tax, tmp_path, split)
    return tax, split, tmp_path / tax.splits[split].index


def test_openimages_malformed_csv_row(tmp_path):
    tax, split, index = _openimages(tmp_path)
    with open(index, "a", newline="") as f:
        f.write("1f2e3d4c5b6a7980_m0_bb09.png,1f2e3d4c5b6a7980\n")  # two fields only
    items = {i.key: i for i in get_reader("openimages_v6").plan(tax, tmp_path, split)}
    err = bad(tax, items["1f2e3d4c5b6a7980"])
    assert err.path == str(index) and "malformed CSV row at line 5" in err.reason
    get_reader("openimages_v6").read(tax, items["0a1b2c3d4e5f6789"])  # the other image is unaffected


def test_openimages_unknown_mid_and_missing_mask(tmp_path):
    tax, split, index = _openimages(tmp_path)
    with open(index, newline="") as f:
        rows = list(csv.reader(f))
    rows[1][2] = "/m/not_a_class"
    rows[1][0] = f"{rows[1][1]}_mnot_a_class_{rows[1][3]}.png"
    with open(index, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    items = {i.key: i for i in get_reader("openimages_v6").plan(tax, tmp_path, split)}
    err = bad(tax, items[rows[1][1]])
    assert err.path == str(index) and "/m/not_a_class" in err.reason
    other = items["1f2e3d4c5b6a7980"]
    mask = Path(other.extra["masks_dir"]) / other.extra["masks"][0][0]
    mask.unlink()
    err = bad(tax, other)
    assert err.path == str(mask) and err.reason == "missing file"


def test_png_folder_unknown_colour(tmp_path):
    tax = with_changes(
        shipped("ade20k-150"),
        tmp_path,
        name="colours",
        format="png_folder",
        declared_classes=2,
        ignore_values=[],
        format_options={"mode": "color"},
        classes=[
            {"raw_id": 1, "name": "a", "label": "wall", "color": [10, 20, 30]},
            {"raw_id": 2, "name": "b", "label": "sky", "color": [0, 0, 255]},
        ],
        splits={"s": {"images": "i", "annotations": "a"}},
    )
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[:] = [10, 20, 30]
    rgb[0, 0] = [1, 2, 3]
    place(tmp_path, "i", "k.png", data=png(np.zeros((4, 5, 3), np.uint8)))
    place(tmp_path, "a", "k.png", data=png(rgb))
    [item] = list(get_reader("png_folder").plan(tax, tmp_path, "s"))
    err = bad(tax, item)
    assert err.path == item.annotation and "[1, 2, 3]" in err.reason
