"""Objects365 v2 index meaning and layouts: crowd/ignore boxes, another version's category list,
images without annotations, duplicate ids, boxes of no size, damaged JSON, the release layouts, and a
stored plan that each task reads its own part of."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from support.generated import jpeg
from support.layout import place, shipped

from pipeline import storage
from pipeline.convert.readers import BadSample, get_reader
from pipeline.convert.readers.cocojson import CROWD_NOTE, DEGENERATE_NOTE, EMPTY_NOTE, ORPHAN_NOTE


@pytest.fixture(scope="module")
def tax():
    return shipped("objects365-v2")


def categories(tax) -> list[dict]:
    return [{"id": c.raw_id, "name": c.name} for c in tax.classes]


def write_index(root: Path, tax, images: list[dict], annotations: list[dict], cats=None, split="val") -> Path:
    index = root / tax.splits[split].index
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps({"images": images, "annotations": annotations,
                                 "categories": categories(tax) if cats is None else cats}))
    return index


def v2_image(root: Path, tax, n: int, patch: int = 0, split: str = "val", size=(60, 40)) -> dict:
    """An image as the official archives unpack it (<split>/patchN/<file>), listed as the JSON lists it."""
    name = f"objects365_v2_{n:08d}.jpg"
    place(root, f"{tax.splits[split].images}/patch{patch}", name, data=jpeg(size[0], size[1], n))
    return {"id": n, "file_name": f"images/v2/patch{patch}/{name}", "width": size[0], "height": size[1]}


def ann(n: int, image_id: int, category: int, bbox: list, **flags) -> dict:
    return {"id": n, "image_id": image_id, "category_id": category, "bbox": bbox, "iscrowd": 0, **flags}


def plan(tax, root, split="val"):
    return get_reader("objects365").plan(tax, root, split)


def read_all(tax, items):
    reader = get_reader("objects365")
    return {i.key: reader.read(tax, i) for i in items}


def test_crowd_and_ignore_boxes_are_kept_out_and_counted(tmp_path, tax):
    images = [v2_image(tmp_path, tax, 1)]
    anns = [ann(1, 1, 1, [1, 2, 10, 10]), ann(2, 1, 2, [20, 5, 10, 10], iscrowd=1),
            ann(3, 1, 3, [30, 5, 10, 10], ignore=1), ann(4, 1, 5, [40, 5, 10, 10])]
    write_index(tmp_path, tax, images, anns)
    planned = plan(tax, tmp_path)
    table = tax.raw_to_target()
    [sample] = read_all(tax, planned).values()
    assert sample.boxes == [[1, 2, 11, 12, table[1]], [40, 5, 50, 15, table[5]]]
    assert planned.notes[CROWD_NOTE] == 2


def test_another_versions_category_list_stops_the_split(tmp_path, tax):
    """Objects365 v1 and v2 share ids but not every name: a swapped pair must not relabel boxes."""
    images = [v2_image(tmp_path, tax, 1)]
    cats = categories(tax)
    cats[2]["name"], cats[3]["name"] = cats[3]["name"], cats[2]["name"]
    write_index(tmp_path, tax, images, [ann(1, 1, 1, [1, 1, 5, 5])], cats=cats)
    with pytest.raises(BadSample) as err:
        list(plan(tax, tmp_path))
    reason = err.value.reason
    assert "category id 3" in reason and repr(tax.classes[3].name) in reason and repr(tax.classes[2].name) in reason
    cats = categories(tax) + [{"id": 366, "name": "Hoverboard"}]
    write_index(tmp_path, tax, images, [ann(1, 1, 1, [1, 1, 5, 5])], cats=cats)
    with pytest.raises(BadSample, match="category id 366 .'Hoverboard' in the index. is not in taxonomy"):
        list(plan(tax, tmp_path))


def test_names_compare_without_case_or_spacing(tmp_path, tax):
    images = [v2_image(tmp_path, tax, 1)]
    cats = categories(tax)
    cats[0]["name"] = "  PERSON "
    write_index(tmp_path, tax, images, [ann(1, 1, 1, [1, 1, 5, 5])], cats=cats)
    assert len(list(plan(tax, tmp_path))) == 1


def test_empty_images_duplicate_ids_degenerate_boxes_and_orphans(tmp_path, tax):
    images = [v2_image(tmp_path, tax, n) for n in (1, 2, 3, 4)]
    dup = dict(images[3], file_name="images/v2/patch0/objects365_v2_00000005.jpg")  # id 4 again
    place(tmp_path, f"{tax.splits['val'].images}/patch0", "objects365_v2_00000005.jpg", data=jpeg(60, 40, 5))
    anns = [
        ann(1, 1, 1, [1, 1, 5, 5]), ann(2, 1, 1, [3, 3, 0, 5]), ann(3, 1, 1, [3, 3, 5, -2]),  # two of no size
        ann(4, 4, 2, [2, 2, 6, 6]),  # id 4 is listed twice: nobody may take this box
        ann(5, 99, 1, [1, 1, 5, 5]), ann(6, 99, 1, [2, 2, 5, 5]),  # image 99 is not listed
        ann(7, 3, 2, "not a box"),
    ]  # image 2 has no annotations
    write_index(tmp_path, tax, images + [dup], anns)
    planned = plan(tax, tmp_path)
    items = {i.key: i for i in planned}
    assert set(items) == {"objects365_v2_00000001", "objects365_v2_00000003", "objects365_v2_00000004",
                          "objects365_v2_00000005", "missing-image-99"}
    assert planned.notes[EMPTY_NOTE] == 1 and planned.notes[DEGENERATE_NOTE] == 2
    assert planned.notes[ORPHAN_NOTE] == 2
    reader = get_reader("objects365")
    assert reader.read(tax, items["objects365_v2_00000001"]).boxes == [[1, 1, 6, 6, tax.raw_to_target()[1]]]
    for key, words in (("objects365_v2_00000004", "image id 4 is listed twice"),
                       ("objects365_v2_00000005", "image id 4 is listed twice"),
                       ("missing-image-99", "image id 99"),
                       ("objects365_v2_00000003", "annotations[6] (id 7): malformed bbox")):
        with pytest.raises(BadSample) as err:
            reader.read(tax, items[key])
        assert words in err.value.reason, key


@pytest.mark.parametrize("layout", ["official", "flat", "as_listed"])
def test_release_layouts_are_found(tmp_path, tax, layout):
    """The official archives / mmdetection (train/patchN/<file>), a flat folder, or file_name kept whole."""
    name = "objects365_v1_00420917.jpg"
    folder = {"official": "train/patch8", "flat": "train", "as_listed": "train/images/v1/patch8"}[layout]
    place(tmp_path, folder, name, data=jpeg(40, 30, 3))
    write_index(tmp_path, tax, [{"id": 7, "file_name": f"images/v1/patch8/{name}", "width": 40, "height": 30}],
                [ann(1, 7, 1, [1, 1, 5, 5])], split="train")
    [item] = list(plan(tax, tmp_path, "train"))
    sample = get_reader("objects365").read(tax, item)
    assert (sample.width, sample.height) == (40, 30)


def test_missing_image_names_the_expected_pattern(tmp_path, tax):
    write_index(tmp_path, tax, [{"id": 7, "file_name": "images/v1/patch8/objects365_v1_00420917.jpg"}],
                [ann(1, 7, 1, [1, 1, 5, 5])], split="train")
    [item] = list(plan(tax, tmp_path, "train"))
    with pytest.raises(BadSample) as err:
        get_reader("objects365").read(tax, item)
    assert "patch8/objects365_v1_00420917.jpg" in err.value.reason and "patchN" in err.value.reason


def _valid_json_lines(tax, tmp_path) -> tuple[Path, bytes]:
    images = [v2_image(tmp_path, tax, n) for n in (1, 2)]
    index = write_index(tmp_path, tax, images, [ann(1, 1, 1, [1, 1, 5, 5]), ann(2, 2, 1, [1, 1, 5, 5])])
    text = json.dumps(json.loads(index.read_text()), indent=1).encode()  # many lines
    return index, text


def test_truncated_json_stops_the_split_naming_where(tmp_path, tax):
    index, text = _valid_json_lines(tax, tmp_path)
    cut = text.index(b'"annotations"') + 40
    index.write_bytes(text[:cut])
    with pytest.raises(BadSample) as err:
        list(plan(tax, tmp_path))
    line = text[:cut].count(b"\n") + 1
    assert err.value.path == str(index) and f"line {line}" in err.value.reason and "ends early" in err.value.reason


def test_undecodable_json_bytes_name_their_line(tmp_path, tax):
    index, text = _valid_json_lines(tax, tmp_path)
    at = text.index(b"objects365_v2_00000002")
    index.write_bytes(text[:at] + b"\xff\xfe" + text[at:])
    with pytest.raises(BadSample) as err:
        list(plan(tax, tmp_path))
    line = text[:at].count(b"\n") + 1
    assert f"line {line} (byte {at})" in err.value.reason and "UTF8" in err.value.reason


def test_json_syntax_error_names_its_line(tmp_path, tax):
    index, text = _valid_json_lines(tax, tmp_path)
    at = text.index(b'"height"', text.index(b"objects365_v2_00000002"))
    broken = text[:at] + b"," + text[at:]  # a doubled comma
    index.write_bytes(broken)
    with pytest.raises(BadSample) as err:
        list(plan(tax, tmp_path))
    line = text[:at].count(b"\n") + 1
    assert f"line {line}" in err.value.reason


def test_stored_plan_tasks_read_their_own_rows(tmp_path, tax):
    """With a store, ShardPlans are small references; each loads exactly the items the in-memory plan
    has, and a whole convert gives the same shards with either."""
    from pipeline.convert.plan import plan_split

    images = [v2_image(tmp_path / "r", tax, n, patch=n % 3) for n in range(1, 41)]
    anns = [ann(k, n, 1 + (k % 7), [k % 9, 1, 4 + k % 5, 6]) for n in range(1, 41) for k in range(n * 10, n * 10 + n % 6)]
    write_index(tmp_path / "r", tax, images, anns)
    reader = get_reader("objects365")
    inline = plan_split(reader, tax, tmp_path / "r", "val", 8_000)
    stored = plan_split(reader, tax, tmp_path / "r", "val", 8_000, store=tmp_path / "plan")
    assert len(inline) == len(stored) > 3
    for a, b in zip(inline, stored):
        assert (a.count, a.est_bytes) == (b.count, b.est_bytes) and b.store and not b.inline
        assert len(pickle.dumps(b)) < 600  # what travels to a task
        assert b.items == a.items
    assert stored.notes == inline.notes and stored.notes[EMPTY_NOTE] == sum(1 for n in range(1, 41) if n % 6 == 0)


def test_stored_plan_in_object_storage_reads_the_same_rows_and_box_slices(tmp_path, tax, s3_bucket):
    """An s3:// output keeps its plan beside the shards in the bucket (the one place every node sees);
    a task reads its row groups and its slice of each box array with ranged reads."""
    from pipeline.convert import plan_store
    from pipeline.convert.plan import plan_split

    images = [v2_image(tmp_path / "r", tax, n, patch=n % 3) for n in range(1, 31)]
    anns = [ann(k, n, 1 + (k % 7), [k % 9, 1, 4 + k % 5, 6]) for n in range(1, 31) for k in range(n * 10, n * 10 + n % 5)]
    write_index(tmp_path / "r", tax, images, anns)
    reader = get_reader("objects365")
    inline = plan_split(reader, tax, tmp_path / "r", "val", 8_000)
    store = f"{s3_bucket}/out/{tax.name}/.plan/val"
    stored = plan_split(reader, tax, tmp_path / "r", "val", 8_000, store=store)
    assert len(inline) == len(stored) > 3 and stored[0].store == store
    for a, b in zip(inline, stored):
        assert len(pickle.dumps(b)) < 600 and b.items == a.items
    plan_store.remove(store)
    assert not storage.list_files(store)


def test_convert_with_ray_matches_in_process_and_removes_the_plan(tmp_path, tax, ray_session):
    from pipeline.convert.runner import convert_split

    images = [v2_image(tmp_path / "r", tax, n, patch=n % 2) for n in range(1, 13)]
    anns = [ann(k, n, 1 + k % 5, [1, 1, 5 + k % 4, 6], iscrowd=int(k % 7 == 0)) for n in range(1, 13)
            for k in range(n * 10, n * 10 + 3)]
    write_index(tmp_path / "r", tax, images, anns)
    reader = get_reader("objects365")
    outs = {}
    for use_ray in (False, True):
        out = tmp_path / f"out-{use_ray}"
        result = convert_split(tax, reader, tmp_path / "r", "val", out, shard_bytes=6_000, use_ray=use_ray,
                               progress=False)
        assert result.written == 12 and result.quarantined == 0 and result.shards > 2
        assert result.notes[CROWD_NOTE] == sum(1 for a in anns if a["iscrowd"])
        assert not (out / tax.name / ".plan" / "val").exists()
        outs[use_ray] = {p.name: p.read_bytes() for p in sorted((out / tax.name).glob("*.tar"))}
    assert outs[False] == outs[True]


@pytest.mark.parametrize("order", [("images", "annotations", "categories"), ("categories", "images", "annotations"),
                                   ("annotations", "categories", "images")])
def test_any_key_order_gives_the_same_plan(tmp_path, tax, order):
    """Images and categories are read without a full pass when they come first / last; any other order
    (and a 'categories' key nested in the last annotation) takes the full-pass path, with the same result."""
    images = [v2_image(tmp_path, tax, n) for n in (1, 2)]
    anns = [ann(1, 1, 1, [1, 1, 5, 5]), ann(2, 2, 3, [2, 2, 5, 5], attributes={"categories": [9]})]
    parts = {"images": images, "annotations": anns, "categories": categories(tax)}
    index = tmp_path / tax.splits["val"].index
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps({k: parts[k] for k in order}))
    planned = plan(tax, tmp_path)
    table = tax.raw_to_target()
    assert {k: s.boxes for k, s in read_all(tax, planned).items()} == {
        "objects365_v2_00000001": [[1, 1, 6, 6, table[1]]], "objects365_v2_00000002": [[2, 2, 7, 7, table[3]]]}
