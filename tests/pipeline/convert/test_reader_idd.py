"""The idd reader: level3 id PNGs and _polygons.json rasterised, polygon-only frames paired by folder,
and malformed or unknown polygons named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from support.every_taxonomy import BUILDERS
from support.generated import write_idd
from support.layout import shipped
from support.readers import (
    bad,
    read_by_key,
)

from pipeline.convert.readers import get_reader


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


def test_idd_level3_png_and_polygons(tmp_path):
    tax = shipped("idd")
    raw = write_idd(tax, tmp_path, "train")
    items, samples = read_by_key(tax, tmp_path, "train")
    assert [i.key for i in items] == ["0_000001", "0_000002"]  # IDD numbers frames per folder
    assert items[0].annotation.endswith("_gtFine_labellevel3Ids.png")
    assert items[1].annotation.endswith("_gtFine_polygons.json")
    table = tax.raw_to_target()
    for key, level3 in raw.items():
        assert np.array_equal(samples[key].label, np.vectorize(table.__getitem__)(level3)), key
    assert samples["0_000002"].image_ext == "png"


def test_idd_polygon_only_frame_pairs_by_folder(tmp_path):
    """Two folders hold frame 000001; one has the level-3 PNG, the other only polygons: each frame
    gets its own file, never the other folder's."""
    tax = shipped("idd")
    truth = BUILDERS["idd"](tax, tmp_path, "val", 0)
    items = {i.key: i for i in get_reader("idd").plan(tax, tmp_path, "val")}
    assert items.keys() == truth.keys()
    assert items["a0_s0x0"].annotation.endswith("gtFine/val/a0/s0x0_gtFine_labellevel3Ids.png")
    assert items["b0_s0x0"].annotation.endswith("gtFine/val/b0/s0x0_gtFine_polygons.json")


def test_idd_polygon_with_a_nan_point_is_quarantined_naming_the_file(tmp_path):
    """json reads NaN as a float; PIL would draw it as a sliver, written as a silently wrong label."""
    tax = shipped("idd")
    write_idd(tax, tmp_path, "train")
    items = list(get_reader("idd").plan(tax, tmp_path, "train"))
    poly = Path(items[1].annotation)
    data = json.loads(poly.read_text())
    data["objects"][1]["polygon"][2] = [float("nan"), 20]
    poly.write_text(json.dumps(data))  # writes NaN, as a NaN in the real file reads
    err = bad(tax, items[1])
    assert err.path == str(poly) and "objects[1]" in err.reason and "nan" in err.reason
