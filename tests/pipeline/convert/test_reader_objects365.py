"""The objects365 reader: boxes clipped and dropped as the release needs, the JSON read once, and an
unknown category named."""

from __future__ import annotations

import json

from support.generated import write_objects365
from support.layout import shipped
from support.readers import (
    bad,
)

from pipeline.convert.readers import cocojson, get_reader


def test_objects365_unknown_category(tmp_path):
    tax = shipped("objects365-v2")
    write_objects365(tax, tmp_path, "val")
    index = tmp_path / tax.splits["val"].index
    data = json.loads(index.read_text())
    data["annotations"][0]["category_id"] = 9999
    index.write_text(json.dumps(data))
    items = list(get_reader("objects365").plan(tax, tmp_path, "val"))
    err = bad(tax, items[0])
    assert err.path == str(index) and "9999" in err.reason and err.unknown == [9999]


def test_objects365_boxes_clipped_degenerate_dropped_json_read_once(tmp_path, monkeypatch):
    from pipeline.convert.readers import jsonindex

    tax = shipped("objects365-v2")
    expected = write_objects365(tax, tmp_path, "train")
    calls = []
    real_stream = jsonindex.stream
    monkeypatch.setattr(jsonindex, "stream", lambda path, prefix: calls.append(prefix) or real_stream(path, prefix))
    reader = get_reader("objects365")
    planned = reader.plan(tax, tmp_path, "train")
    items = list(planned)
    assert calls == ["annotations.item"]  # one full pass; images and categories are read without one
    assert [i.key for i in items] == sorted(expected)  # the image with no boxes is left out
    assert planned.notes[cocojson.EMPTY_NOTE] == 1
    assert planned.notes[cocojson.CROWD_NOTE] == 1 and planned.notes[cocojson.DEGENERATE_NOTE] == 1
    samples = {i.key: reader.read(tax, i) for i in items}
    assert len(calls) == 1  # read() uses WorkItem.extra, never the JSON
    for key, boxes in expected.items():
        assert samples[key].label is None
        assert samples[key].boxes == boxes
    assert (samples["objects365_v1_00000001"].width, samples["objects365_v1_00000001"].height) == (100, 80)
