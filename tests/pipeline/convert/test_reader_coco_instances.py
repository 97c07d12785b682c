"""The coco_instances reader on the real COCO sample: dense masks agree with the panoptic PNG, boxes come
from the real JSON."""

from __future__ import annotations

import json

import numpy as np
from support.layout import place, shipped, with_changes
from support.readers import (
    coco_root,
    read_all,
)

from pipeline.convert.readers import get_reader


def test_coco_instances_dense_equals_panoptic(real_fixtures, tmp_path):
    """detection_format.json holds the same segments as RLE: painting them must give the panoptic map."""
    pan_tax = shipped("coco-panoptic-133")
    _, panoptic = read_all(
        pan_tax, coco_root(real_fixtures, tmp_path / "pan", pan_tax, "val2017"), "val2017"
    )
    tax = with_changes(
        pan_tax,
        tmp_path,
        name="coco-instances-test",
        format="coco_instances",
        splits={"val": {"images": "val2017", "index": "annotations/instances_val2017.json"}},
    )
    root = tmp_path / "inst"
    for image in sorted((real_fixtures / "coco-panoptic/images").glob("*.jpg")):
        place(root, "val2017", image.name, src=image)
    place(
        root,
        "annotations",
        "instances_val2017.json",
        src=real_fixtures / "coco-panoptic/detection_format.json",
    )
    items, samples = read_all(tax, root, "val")
    assert [i.key for i in items] == [s.key for s in panoptic]
    for ours, theirs in zip(samples, panoptic):
        assert np.array_equal(ours.label, theirs.label)


def test_coco_instances_boxes_from_real_json(real_fixtures, tmp_path):
    pan_tax = shipped("coco-panoptic-133")
    tax = with_changes(
        pan_tax,
        tmp_path,
        name="coco-boxes-test",
        format="coco_instances",
        supervision="box",
        splits={"val": {"images": "val2017", "index": "det.json"}},
    )
    for image in sorted((real_fixtures / "coco-panoptic/images").glob("*.jpg")):
        place(tmp_path, "val2017", image.name, src=image)
    det = json.loads((real_fixtures / "coco-panoptic/detection_format.json").read_text())
    place(tmp_path, "", "det.json", data=json.dumps(det).encode())
    _, samples = read_all(tax, tmp_path, "val")
    table = tax.raw_to_target()
    for sample in samples:
        assert sample.label is None
        image_id = int(sample.key)
        expected = sorted(
            [int(x), int(y), int(x + w), int(y + h), table[a["category_id"]]]
            for a in det["annotations"]
            if a["image_id"] == image_id and not a["iscrowd"]  # a crowd box is a group, not a box
            for x, y, w, h in [a["bbox"]]  # the panoptic bboxes are whole pixels
        )
        assert sorted(sample.boxes) == expected
    crowd = get_reader("coco_instances").plan(tax, tmp_path, "val").notes["crowd or ignore boxes (kept out of boxes)"]
    assert crowd == sum(1 for a in det["annotations"] if a["iscrowd"]) >= 1
