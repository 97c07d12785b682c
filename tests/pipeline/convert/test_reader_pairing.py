"""Pairing label files with images (pipeline/convert/readers/pairing.py): real release file names pair
and key as the datasets ship them; index lists and scene lists select exactly what they list and
report what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.every_taxonomy import BUILDERS
from support.layout import shipped, with_changes

from pipeline.convert.readers import BadSample, get_reader

# --- real release names ---------------------------------------------------------------------------
# (dataset, split, [(image, annotation, expected key)], extra files): names as the releases ship them.
REAL_NAMES = [
    (
        "cityscapes",
        "val",
        [
            (
                "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png",
                "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png",
                "frankfurt_000000_000294",
            )
        ],
        {},
    ),
    (
        "idd",
        "train",
        [
            (
                "leftImg8bit/train/0/005506_leftImg8bit.png",
                "gtFine/train/0/005506_gtFine_labellevel3Ids.png",
                "0_005506",
            ),
            (
                "leftImg8bit/train/1/005506_leftImg8bit.png",
                "gtFine/train/1/005506_gtFine_labellevel3Ids.png",
                "1_005506",
            ),
        ],
        {},
    ),
    (
        "scannet",
        "val",
        [
            (
                "scannet_frames_25k/scene0011_00/color/000000.jpg",
                "scannet_frames_25k/scene0011_00/label/000000.png",
                "scene0011_00_000000",
            ),
            (
                "scannet_frames_25k/scene0011_01/color/000000.jpg",
                "scannet_frames_25k/scene0011_01/label/000000.png",
                "scene0011_01_000000",
            ),
        ],
        {
            "scannetv2_val.txt": "scene0011_00\nscene0011_01\n",
            "scannet_frames_25k/scene0000_00/color/000000.jpg": "",
            "scannet_frames_25k/scene0000_00/label/000000.png": "",
        },
    ),
    (
        "sunrgbd",
        "train",
        [
            ("image/train/img-000001.jpg", "semseg-label37/train/00000001.png", "img-000001"),
            ("image/train/img-005285.jpg", "semseg-label37/train/00005285.png", "img-005285"),
        ],
        {},
    ),
    ("sunrgbd", "test", [("image/test/img-000001.jpg", "semseg-label37/test/00000001.png", "img-000001")], {}),
    (
        "wilddash",
        "val",
        [("wd_val_01/cn0000_100000.png", "wd_val_01/cn0000_100000_labelIds.png", "cn0000_100000")],
        {"wd_val_01/cn0000_100000_instanceIds.png": ""},
    ),
    (
        "kitti",
        "training",
        [("training/image_2/000000_10.png", "training/semantic/000000_10.png", "000000_10")],
        {"training/semantic_rgb/000000_10.png": ""},
    ),
    (
        "pascal-voc",
        "val",
        [("JPEGImages/2007_000033.jpg", "SegmentationClass/2007_000033.png", "2007_000033")],
        {
            "ImageSets/Segmentation/val.txt": "2007_000033\n",
            "JPEGImages/2007_000032.jpg": "",
            "SegmentationClass/2007_000032.png": "",
            "ImageSets/Segmentation/train.txt": "2007_000032\n",
        },
    ),
    (
        "pascal-context",
        "train",
        [("JPEGImages/2008_000002.jpg", "SegmentationClassContext/2008_000002.png", "2008_000002")],
        {
            "ImageSets/SegmentationContext/train.txt": "2008_000002\n",
            "JPEGImages/2008_000003.jpg": "",
            "SegmentationClassContext/2008_000003.png": "",
        },
    ),
    (
        "nyudv2-40",
        "test",
        [("images/0001.png", "labels40/0001.png", "0001")],
        {"test.txt": "0001\n", "train.txt": "0002\n", "images/0002.png": "", "labels40/0002.png": ""},
    ),
    ("camvid", "test", [("test/0001TP_008550.png", "testannot/0001TP_008550.png", "0001TP_008550")], {}),
    (
        "video-png-folder",  # a video dataset shipped as per-frame PNGs (YouTube-VOS style), see video_png_folder
        "valid",
        [
            ("JPEGImages/0062f687f1/00000.jpg", "Annotations/0062f687f1/00000.png", "0062f687f1_00000"),
            ("JPEGImages/00f88c4f0a/00000.jpg", "Annotations/00f88c4f0a/00000.png", "00f88c4f0a_00000"),
        ],
        {},
    ),
    (
        "ade20k-150",
        "validation",
        [
            (
                "images/validation/ADE_val_00000001.jpg",
                "annotations/validation/ADE_val_00000001.png",
                "ADE_val_00000001",
            )
        ],
        {},
    ),
    (
        "bdd100k",
        "val",
        [
            (
                "images/10k/val/7d2f7975-e0c1c5a7.jpg",
                "labels/sem_seg/masks/val/7d2f7975-e0c1c5a7.png",
                "7d2f7975-e0c1c5a7",
            )
        ],
        {},
    ),
    (
        "mapillary-vistas-v1.2",
        "validation",
        [
            (
                "validation/images/__CRyFzoDOXn6unQ6a3DnQ.jpg",
                "validation/v1.2/labels/__CRyFzoDOXn6unQ6a3DnQ.png",
                "__CRyFzoDOXn6unQ6a3DnQ",
            )
        ],
        {"validation/v2.0/labels/__CRyFzoDOXn6unQ6a3DnQ.png": ""},
    ),
    (
        "mapillary-vistas-v2.0",
        "training",
        [
            (
                "training/images/__CRyFzoDOXn6unQ6a3DnQ.jpg",
                "training/v2.0/labels/__CRyFzoDOXn6unQ6a3DnQ.png",
                "__CRyFzoDOXn6unQ6a3DnQ",
            )
        ],
        {"training/v1.2/labels/__CRyFzoDOXn6unQ6a3DnQ.png": ""},
    ),
]


@pytest.mark.parametrize(
    ("name", "split", "pairs", "extra"), REAL_NAMES, ids=[f"{n}-{s}" for n, s, *_ in REAL_NAMES]
)
def test_real_release_names_pair_and_key(tmp_path, name, split, pairs, extra):
    """Planning needs only names: empty files laid out as the release does must pair one to one."""
    tax = video_png_folder(tmp_path) if name == "video-png-folder" else shipped(name)
    for rel in [p for pair in pairs for p in pair[:2]]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    for rel, text in extra.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    items = list(get_reader(tax.format).plan(tax, tmp_path, split))
    got = [
        (
            Path(i.image).relative_to(tmp_path).as_posix(),
            Path(i.annotation).relative_to(tmp_path).as_posix(),
            i.key,
        )
        for i in items
    ]
    assert got == sorted(pairs, key=lambda p: p[2])
    assert not any(i.extra.get("error") for i in items)


# --- index lists and scene lists --------------------------------------------------------------------
def test_index_reports_listed_ids_without_image_or_label(tmp_path):
    tax = shipped("pascal-voc")
    truth = BUILDERS["png_folder"](tax, tmp_path, "train", 0)
    index = tmp_path / tax.splits["train"].index
    listed = index.read_text().split()
    (tmp_path / "JPEGImages" / f"{listed[0]}.jpg").unlink()
    index.write_text(index.read_text() + "\n2099_000001\n")
    reader = get_reader("png_folder")
    items = {i.key: i for i in reader.plan(tax, tmp_path, "train")}
    assert sorted(items) == sorted([*truth, "2099_000001"])
    with pytest.raises(BadSample) as info:
        reader.read(tax, items[listed[0]])
    assert info.value.path == str(index)
    assert (
        f"line 1: listed id {listed[0]!r} has no image (looked for JPEGImages/{listed[0]}.jpg)"
        == info.value.reason
    )
    with pytest.raises(BadSample) as info:
        reader.read(tax, items["2099_000001"])
    assert (
        info.value.path == str(index) and "line 4: listed id '2099_000001' has no image" in info.value.reason
    )
    assert "no label file (looked for SegmentationClass/2099_000001.png)" in info.value.reason
    assert reader.read(tax, items[listed[1]]).label is not None  # the rest still converts


def video_png_folder(tmp_path, **changes):
    """The unseen-label taxonomy as per-frame index PNGs in video folders (png_folder), the layout the
    YouTube-VIS YAML had before it read the release's instances JSON (format youtube_vis)."""
    layout = {"images": "JPEGImages/*/*.jpg", "annotations": "Annotations/*/*.png"}
    base = {"format": "png_folder", "format_options": {"mode": "index"}, "splits": {"valid": layout}}
    return with_changes(shipped("youtube-vis-unseen"), tmp_path, **{**base, **changes})


def test_index_bare_id_in_two_folders_is_refused(tmp_path):
    tax = video_png_folder(
        tmp_path,
        splits={
            "valid": {
                "images": "JPEGImages/*/*.jpg",
                "annotations": "Annotations/*/*.png",
                "index": "list.txt",
            }
        },
    )
    for video in ("v1", "v2"):
        for rel in (f"JPEGImages/{video}/00000.jpg", f"Annotations/{video}/00000.png"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(b"")
    (tmp_path / "list.txt").write_text("v2/00000\n")
    [item] = get_reader("png_folder").plan(tax, tmp_path, "valid")
    assert item.key == "v2_00000" and item.annotation.endswith("Annotations/v2/00000.png")
    (tmp_path / "list.txt").write_text("00000\n")
    with pytest.raises(BadSample, match="line 1: id '00000' is in several folders"):
        list(get_reader("png_folder").plan(tax, tmp_path, "valid"))


def test_index_duplicate_id_is_refused(tmp_path):
    tax = shipped("pascal-context")
    BUILDERS["png_folder"](tax, tmp_path, "val", 0)
    index = tmp_path / tax.splits["val"].index
    first = index.read_text().split()[0]
    index.write_text(index.read_text() + first + "\n")
    with pytest.raises(BadSample, match=f"line 3: id '{first}' listed twice \\(first on line 1\\)"):
        list(get_reader("png_folder").plan(tax, tmp_path, "val"))


def test_scene_list_keeps_listed_scenes_and_reports_missing_ones(tmp_path):
    tax = shipped("scannet")
    truth = BUILDERS["png_folder"](tax, tmp_path, "val", 0)
    scenes = tmp_path / tax.format_options["scene_list"]
    scenes.write_text(scenes.read_text() + "scene0999_00\n")
    reader = get_reader("png_folder")
    items = {i.key: i for i in reader.plan(tax, tmp_path, "val")}
    assert sorted(items) == sorted([*truth, "missing-scene-scene0999_00"])
    with pytest.raises(BadSample) as info:
        reader.read(tax, items["missing-scene-scene0999_00"])
    assert info.value.path == str(scenes)
    assert (
        "line 3: scene 'scene0999_00' has no label files under scannet_frames_25k/scene0999_00"
        in info.value.reason
    )
    (tmp_path / tax.format_options["scene_list"]).unlink()
    with pytest.raises(BadSample, match="missing file \\(scene_list\\)"):
        list(reader.plan(tax, tmp_path, "val"))
