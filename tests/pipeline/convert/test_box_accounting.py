"""Every box the converter does not keep as the index drew it is counted by its real reason, in the
convert summary: boxes partly outside (clipped), wholly outside, of an ignored class (dropped), and
images whose file is the index's size uniformly resized (boxes scaled); any other size mismatch is
quarantined, since boxes drawn for one size are wrong on another."""

from __future__ import annotations

import json
from pathlib import Path

from support.generated import jpeg
from support.layout import place, shipped
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.convert.readers import BadSample, cocojson, get_reader
from pipeline.convert.runner import convert_split


def objects365(root: Path, images: list[tuple[int, tuple, tuple]], annotations: list[dict]):
    """images: (id, listed width x height, file width x height)."""
    tax = shipped("objects365-v2")
    entries = []
    for n, listed, real in images:
        name = f"objects365_v2_{n:08d}.jpg"
        place(root, tax.splits["val"].images, name, data=jpeg(*real, seed=n))
        entries.append({"id": n, "file_name": name, "width": listed[0], "height": listed[1]})
    index = root / tax.splits["val"].index
    index.parent.mkdir(parents=True, exist_ok=True)
    cats = [{"id": c.raw_id, "name": c.name} for c in tax.classes]
    index.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": cats}))
    return tax


def box(n: int, image_id: int, bbox: list, crowd: int = 0) -> dict:
    return {"id": n, "image_id": image_id, "category_id": 1, "bbox": bbox, "iscrowd": crowd}


def read_all(tax, root):
    reader = get_reader("objects365")
    out = {}
    for item in reader.plan(tax, root, "val"):
        try:
            out[item.key] = reader.read(tax, item)
        except BadSample as e:
            out[item.key] = e
    return out


def test_file_half_the_index_size_scales_its_boxes(tmp_path):
    tax = objects365(tmp_path, [(1, (200, 160), (100, 80))],
                     [box(1, 1, [20, 40, 100, 60]), box(2, 1, [150, 100, 40, 40])])
    sample = read_all(tax, tmp_path)["objects365_v2_00000001"]
    target = tax.raw_to_target()[1]
    assert sample.boxes == [[10, 20, 60, 50, target], [75, 50, 95, 70, target]]
    assert sample.notes == {cocojson.SCALED_NOTE: 1}


def test_file_of_another_shape_than_the_index_is_quarantined(tmp_path):
    tax = objects365(tmp_path, [(1, (200, 160), (160, 200)), (2, (60, 40), (60, 40))],
                     [box(1, 1, [20, 40, 100, 60]), box(2, 2, [1, 1, 5, 5])])
    read = read_all(tax, tmp_path)
    assert isinstance(read["objects365_v2_00000001"], BadSample)
    assert "160x200 but the index says 200x160" in read["objects365_v2_00000001"].reason
    assert len(read["objects365_v2_00000002"].boxes) == 1


def test_summary_counts_each_box_by_its_reason(tmp_path, monkeypatch):
    root = tmp_path / "root"
    objects365(root, [(1, (60, 40), (60, 40))], [
        box(1, 1, [1, 1, 10, 10]),  # kept whole
        box(2, 1, [55, 30, 10, 20]),  # partly outside: clipped
        box(3, 1, [-8, 5, 10, 10]),  # partly outside: clipped
        box(4, 1, [70, 5, 10, 10]),  # wholly outside: dropped
        box(5, 1, [5, 5, 0, 10]),  # no size: dropped while planning
        box(6, 1, [5, 5, 10, 10], crowd=1),  # crowd: kept out
    ])
    result = convert_split(shipped("objects365-v2"), get_reader("objects365"), root, "val", tmp_path / "out",
                           shard_bytes=10**6, progress=False)
    assert result.written == 1
    reasons = {cocojson.CLIPPED_NOTE: 2, cocojson.OUTSIDE_NOTE: 1, cocojson.DEGENERATE_NOTE: 1, cocojson.CROWD_NOTE: 1}
    assert {k: v for k, v in result.notes.items() if v} == reasons

    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["convert", "objects365-v2", "--root", str(root), "--out", str(tmp_path / "o2"),
                                     "--no-ray", "--split", "val"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    for reason, count in reasons.items():
        row = next(line for line in lines if reason in line)
        assert "objects365-v2" in row and row.rstrip(" │|").endswith(str(count))
