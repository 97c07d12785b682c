"""The png_folder reader: index and colour modes on real PNGs, and an unknown colour named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from support.every_taxonomy import expected_labels
from support.generated import png
from support.layout import place, shipped, with_changes
from support.readers import (
    bad,
    read_all,
)

from pipeline.convert.readers import get_reader


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


def test_png_folder_index_and_color_modes_on_real_pngs(real_fixtures, tmp_path):
    """Index mode on the ADE challenge PNGs; colour mode on the Mapillary RGB rendering, whose result
    must equal the palette-index reading."""
    ade = shipped("ade20k-150")
    idx_tax = with_changes(
        ade,
        tmp_path,
        name="ade-as-folder",
        format="png_folder",
        format_options={"mode": "index"},
        splits={"val": {"images": "img", "annotations": "ann"}},
    )
    src = real_fixtures / "ade20k-challenge"
    place(tmp_path / "a", "img", "ADE_val_00000002.jpg", src=src / "images/ADE_val_00000002.jpg")
    place(tmp_path / "a", "ann", "ADE_val_00000002.png", src=src / "annotations/ADE_val_00000002.png")
    _, [sample] = read_all(idx_tax, tmp_path / "a", "val")
    assert np.array_equal(
        sample.label, expected_labels(ade, np.array(Image.open(src / "annotations/ADE_val_00000002.png")))
    )

    config = json.loads((real_fixtures / "mapillary/config_v1.1.json").read_text())["labels"]
    classes = [
        {"raw_id": n, "name": l["readable"], "label": "thing", "color": l["color"]}
        for n, l in enumerate(config)
    ]
    col_tax = with_changes(
        ade,
        tmp_path,
        name="mapillary-as-colour",
        format="png_folder",
        declared_classes=len(classes),
        classes=classes,
        ignore_values=[],
        format_options={"mode": "color"},
        splits={"val": {"images": "img", "annotations": "ann"}},
    )
    msrc = real_fixtures / "mapillary"
    place(tmp_path / "m", "img", "m.jpg", src=msrc / "images/__CRyFzoDOXn6unQ6a3DnQ.jpg")
    palette = Image.open(msrc / "v1.2/__CRyFzoDOXn6unQ6a3DnQ.png")
    place(tmp_path / "m", "ann", "m.png", data=_png_bytes(palette.convert("RGB")))
    _, [colour_sample] = read_all(col_tax, tmp_path / "m", "val")
    assert np.array_equal(colour_sample.label, np.array(palette))


def _png_bytes(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_orphan_mask_is_reported_by_its_real_path(tmp_path):
    """DeepGlobe's layout (image and mask in one folder, `_sat`/`_mask` suffixes): a mask whose image
    is gone is quarantined against the mask file, which exists, saying which image was looked for."""
    tax = with_changes(
        shipped("ade20k-150"), tmp_path, name="one-folder", format="png_folder", declared_classes=None,
        format_options={"image_suffix": "_sat", "annotation_suffix": "_mask"},
        splits={"s": {"images": "train/*.jpg", "annotations": "train/*.png"}},
    )
    place(tmp_path, "train", "1_sat.jpg", data=png(np.zeros((4, 5, 3), np.uint8)))
    place(tmp_path, "train", "1_mask.png", data=png(np.zeros((4, 5), np.uint8)))
    mask = place(tmp_path, "train", "256979_mask.png", data=png(np.zeros((4, 5), np.uint8)))
    items = {it.key: it for it in get_reader("png_folder").plan(tax, tmp_path, "s")}
    assert sorted(items) == ["1", "256979"]
    err = bad(tax, items["256979"])
    assert Path(err.path) == mask and Path(err.path).exists()
    assert "no image for this label file" in err.reason and "train/256979_sat.jpg" in err.reason
