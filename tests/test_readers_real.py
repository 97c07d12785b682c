"""Readers on the real annotation samples (shared/fixtures/real), each checked pixel by pixel against
a source of truth the reader does not use: a sibling file the dataset ships, or a plain decode."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from fixtures_gen.layout import place, shipped, with_changes
from PIL import Image

from pipeline.convert.readers import get_reader
from pipeline.convert.readers.common import sanitize_key


def read_all(tax, root: Path, split: str):
    reader = get_reader(tax.format)
    items = list(reader.plan(tax, root, split))
    return items, [reader.read(tax, item) for item in items]


def by_dict(tax, raw: np.ndarray) -> np.ndarray:
    """The taxonomy mapping applied with a plain dict, per distinct value (no LUT code)."""
    table = tax.raw_to_target()
    out = np.zeros(raw.shape, dtype=np.int64)
    for value in np.unique(raw).tolist():
        out[raw == value] = table[value]
    return out


def check_sample(sample, image_path: Path) -> None:
    assert sample.image_bytes == image_path.read_bytes()
    with Image.open(image_path) as im:
        assert (sample.width, sample.height) == im.size
        assert sample.image_ext == {"JPEG": "jpg", "PNG": "png"}[im.format]
    if sample.label is not None:
        assert sample.label.shape == (sample.height, sample.width)
    assert sample.key == sanitize_key(sample.key)


def test_ade20k_challenge_matches_plain_decode(real_fixtures, tmp_path):
    tax = shipped("ade20k-150")
    src = real_fixtures / "ade20k-challenge"
    spec = tax.splits["validation"]
    for image in sorted((src / "images").glob("*.jpg")):
        place(tmp_path, spec.images, image.name, src=image)
        place(tmp_path, spec.annotations, image.stem + ".png", src=src / "annotations" / f"{image.stem}.png")
    items, samples = read_all(tax, tmp_path, "validation")
    assert [i.key for i in items] == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    for sample in samples:
        raw = np.array(Image.open(src / "annotations" / f"{sample.key}.png"))
        assert sample.label.dtype == np.uint8
        assert np.array_equal(sample.label, by_dict(tax, raw))
        assert np.array_equal(sample.label == 255, raw == 0)  # 0 = other -> ignore
        check_sample(sample, src / "images" / f"{sample.key}.jpg")
        assert sample.sources["annotation"].startswith("annotations/validation/")


def test_ade20k_full_seg_agrees_with_shipped_challenge_png(real_fixtures, tmp_path):
    src = real_fixtures / "ade20k-full"
    tax = with_changes(
        shipped("ade20k-150"),
        tmp_path,
        splits={
            "training": {
                "images": "images/training/*/*/*.jpg",
                "annotations": "images/training/*/*/*_seg.png",
            }
        },
        format_options={
            "variant": "full",
            "annotation_suffix": "_seg",
            "map_from_ade": "index/mapFromADE.txt",
        },
    )
    root = tmp_path / "ADE20K"
    seg = place(
        root,
        "images/training/*/*/*_seg.png",
        "ADE_train_00000970_seg.png",
        src=src / "ADE_train_00000970_seg.png",
    )
    Image.new("RGB", Image.open(seg).size, (90, 90, 90)).save(seg.parent / "ADE_train_00000970.jpg")
    place(root, "index", "mapFromADE.txt", src=src / "mapFromADE.txt")
    items, [sample] = read_all(tax, root, "training")
    assert [i.key for i in items] == ["x_x_ADE_train_00000970"]  # keys carry the wildcard folders
    assert (sample.width, sample.height) == (1024, 768)
    # The official challenge PNG was made from this file and resized (nearest) to 683x512.
    challenge = np.array(Image.open(src / "ADE_train_00000970_challenge.png"))
    ours = np.array(Image.fromarray(sample.label).resize(challenge.shape[::-1], Image.NEAREST))
    agreement = (ours == by_dict(tax, challenge)).mean()
    assert agreement > 0.98, agreement
    assert set(np.unique(ours).tolist()) == set(np.unique(by_dict(tax, challenge)).tolist())


def _coco_root(real_fixtures: Path, tmp_path: Path, tax, split: str) -> Path:
    src = real_fixtures / "coco-panoptic"
    spec = tax.splits[split]
    for image in sorted((src / "images").glob("*.jpg")):
        place(tmp_path, spec.images, image.name, src=image)
        place(
            tmp_path,
            spec.annotations,
            image.stem + ".png",
            src=src / "panoptic_examples" / f"{image.stem}.png",
        )
    place(tmp_path, str(Path(spec.index).parent), Path(spec.index).name, src=src / "panoptic_examples.json")
    return tmp_path


def test_coco_panoptic_category_pixel_counts_equal_segment_areas(real_fixtures, tmp_path):
    tax = shipped("coco-panoptic-133")
    root = _coco_root(real_fixtures, tmp_path, tax, "val2017")
    items, samples = read_all(tax, root, "val2017")
    assert [i.key for i in items] == ["000000142238", "000000439180"]
    meta = json.loads((real_fixtures / "coco-panoptic/panoptic_examples.json").read_text())
    table = tax.raw_to_target()
    for sample, ann in zip(samples, sorted(meta["annotations"], key=lambda a: a["file_name"])):
        expected = Counter()
        for seg in ann["segments_info"]:
            expected[table[seg["category_id"]]] += seg["area"]
        got = Counter(dict(zip(*[a.tolist() for a in np.unique(sample.label, return_counts=True)])))
        void = got.pop(255, 0)
        assert got == expected
        assert void == sample.width * sample.height - sum(expected.values())
        check_sample(sample, real_fixtures / "coco-panoptic/images" / f"{sample.key}.jpg")


def test_coco_instances_dense_equals_panoptic(real_fixtures, tmp_path):
    """detection_format.json holds the same segments as RLE: painting them must give the panoptic map."""
    pan_tax = shipped("coco-panoptic-133")
    _, panoptic = read_all(
        pan_tax, _coco_root(real_fixtures, tmp_path / "pan", pan_tax, "val2017"), "val2017"
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
            if a["image_id"] == image_id
            for x, y, w, h in [a["bbox"]]  # the panoptic bboxes are whole pixels
        )
        assert sorted(sample.boxes) == expected


def _mapillary(real_fixtures: Path, tmp_path: Path, version: str):
    tax = shipped(f"mapillary-vistas-{version}")
    src = real_fixtures / "mapillary"
    spec = tax.splits["training"]
    place(tmp_path, spec.images, "__CRyFzoDOXn6unQ6a3DnQ.jpg", src=src / "images/__CRyFzoDOXn6unQ6a3DnQ.jpg")
    place(
        tmp_path,
        spec.annotations,
        "__CRyFzoDOXn6unQ6a3DnQ.png",
        src=src / version / "__CRyFzoDOXn6unQ6a3DnQ.png",
    )
    items, [sample] = read_all(tax, tmp_path, "training")
    assert [i.key for i in items] == ["__CRyFzoDOXn6unQ6a3DnQ"]
    check_sample(sample, src / "images/__CRyFzoDOXn6unQ6a3DnQ.jpg")
    return tax, sample, Image.open(src / version / "__CRyFzoDOXn6unQ6a3DnQ.png")


def test_mapillary_v12_class_colours_equal_rgb_rendering(real_fixtures, tmp_path):
    tax, sample, png = _mapillary(real_fixtures, tmp_path, "v1.2")
    config = json.loads((real_fixtures / "mapillary/config_v1.1.json").read_text())["labels"]
    ignored_raw = [r for c in tax.classes if c.ignore for r in c.all_raw_ids] + list(tax.ignore_values)
    # Class index -> its raw id -> the colour the official config gives that id.
    colour_of = np.array([config[c.raw_id]["color"] for c in tax.classes] + [[0, 0, 0]], dtype=np.uint8)
    rendered = np.array(png.convert("RGB"))
    known = sample.label != 255
    assert known.mean() > 0.5
    assert np.array_equal(colour_of[sample.label[known]], rendered[known])
    assert all(
        tuple(rendered[y, x]) in {tuple(config[r]["color"]) for r in ignored_raw}
        for y, x in zip(*np.nonzero(~known))
    )


def test_mapillary_v20_palette_index_not_rgb(real_fixtures, tmp_path):
    tax, sample, png = _mapillary(real_fixtures, tmp_path, "v2.0")
    raw = np.array(png)
    assert png.mode == "P"
    assert np.array_equal(sample.label, by_dict(tax, raw))
    if all(c.color is not None for c in tax.classes):
        colours = np.array([c.color for c in tax.classes] + [[0, 0, 0]], dtype=np.uint8)
        known = sample.label != 255
        assert np.array_equal(colours[sample.label[known]], np.array(png.convert("RGB"))[known])


def test_cityscapes_label_ids_through_taxonomy_equal_train_ids(real_fixtures, tmp_path):
    tax = shipped("cityscapes")
    src = real_fixtures / "cityscapes"
    split = "val"
    spec = tax.splits[split]
    stem = "frankfurt_000000_000294"
    place(
        tmp_path,
        spec.images,
        f"{stem}_leftImg8bit.png",
        src=src / f"leftImg8bit/{stem}_leftImg8bit.png",
        folder="frankfurt",
    )
    place(
        tmp_path,
        spec.annotations,
        f"{stem}_gtFine_labelIds.png",
        src=src / f"gtFine/{stem}_gtFine_labelIds.png",
        folder="frankfurt",
    )
    items, [sample] = read_all(tax, tmp_path, split)
    assert [i.key for i in items] == [stem]
    check_sample(sample, src / f"leftImg8bit/{stem}_leftImg8bit.png")
    train_ids = np.array(Image.open(src / f"gtFine/{stem}_gtFine_labelTrainIds.png"))
    label_ids = np.array(Image.open(src / f"gtFine/{stem}_gtFine_labelIds.png"))
    # The fixture's two PNGs were downscaled separately, so a few edge pixels disagree; per id, the
    # train id most pixels carry must be exactly what the taxonomy gives.
    assert (sample.label == train_ids).mean() > 0.99
    for value in np.unique(label_ids).tolist():
        ours = np.unique(sample.label[label_ids == value])
        assert len(ours) == 1
        assert ours[0] == Counter(train_ids[label_ids == value].tolist()).most_common(1)[0][0]


def test_sunrgbd_pairs_by_number_and_matches_plain_decode(real_fixtures, tmp_path):
    tax = shipped("sunrgbd")
    src = real_fixtures / "sunrgbd"
    split = next(iter(tax.splits))
    spec = tax.splits[split]
    place(tmp_path, spec.images, "img-000001.jpg", src=src / "image/img-000001.jpg")
    place(tmp_path, spec.annotations, "00000001.png", src=src / "label37/00000001.png")
    items, [sample] = read_all(tax, tmp_path, split)
    assert items[0].key == "img-000001"
    raw = np.array(Image.open(src / "label37/00000001.png"))
    assert np.array_equal(sample.label, by_dict(tax, raw))
    assert np.array_equal(sample.label == 255, raw == 255)
    check_sample(sample, src / "image/img-000001.jpg")


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
        sample.label, by_dict(ade, np.array(Image.open(src / "annotations/ADE_val_00000002.png")))
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
