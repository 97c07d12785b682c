"""Every shipped dataset YAML against its reader: a tiny fixture in the YAML's own split layout is
planned and read for every split, and each label map / box list must equal the truth the fixture
builder (tests/fixtures_gen/every_taxonomy.py) worked out from the YAML's raw ids. A new YAML is
covered as soon as its format has a builder; one whose format has none fails here, saying so.

Further tests: real release file names pair as the datasets ship them, index lists and scene lists
select exactly what they list and report what is missing, and format_options a reader would
ignore are refused."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_gen.every_taxonomy import BUILDERS, NoBuilder, dense_pairs
from fixtures_gen.layout import TAXONOMIES, shipped, with_changes

from pipeline.convert.readers import FORMATS, BadSample, get_reader
from pipeline.taxonomy.load import dataset_paths, load_dataset_file

DATASET_YAMLS = dataset_paths(TAXONOMIES)


def load(path: Path):
    tax, problems = load_dataset_file(path)
    assert tax is not None and not problems, f"{path}: {[str(p) for p in problems]}"
    return tax


def test_every_dataset_yaml_is_found():
    names = {p.name for p in DATASET_YAMLS}
    assert len(names) >= 17 and not any(n.startswith("labels") for n in names)
    assert {"scannet.yaml", "pascal-voc.yaml", "idd.yaml", "sunrgbd.yaml"} <= names


def test_every_known_format_has_a_fixture_builder():
    assert set(BUILDERS) == set(FORMATS)


@pytest.mark.parametrize("path", DATASET_YAMLS, ids=lambda p: p.stem)
def test_every_split_converts_as_the_fixture_intends(path, tmp_path):
    tax = load(path)
    builder = BUILDERS.get(tax.format)
    if builder is None:
        pytest.fail(
            f"{path.name}: format {tax.format!r} has no fixture builder; add one to BUILDERS in "
            "tests/fixtures_gen/every_taxonomy.py"
        )
    try:  # every split first: a release's splits share folders (Pascal VOC's JPEGImages)
        truth = {split: builder(tax, tmp_path, split, n) for n, split in enumerate(tax.splits)}
    except NoBuilder as e:
        pytest.fail(f"{path.name}: {e}")
    reader = get_reader(tax.format)
    for split, expected in truth.items():
        where = f"{path.name} split {split!r}"
        assert expected, f"{where}: the builder wrote nothing to check"
        items = list(reader.plan(tax, tmp_path, split))
        assert [i.key for i in items] == sorted(expected), where
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i.key) for i in items), where
        assert pickle.loads(pickle.dumps(items)) == items
        for item in items:
            sample, want = reader.read(tax, item), expected[item.key]
            assert sample.key == item.key
            assert sample.image_bytes == want.image.read_bytes(), f"{where} {item.key}: wrong image"
            if want.label is None:
                assert sample.label is None and sample.boxes == want.boxes, f"{where} {item.key}"
                continue
            assert sample.label.dtype == np.dtype(tax.label_dtype), where
            assert (sample.height, sample.width) == want.label.shape, where
            assert np.array_equal(sample.label, want.label), f"{where} {item.key}: labels differ"


def test_a_format_without_builder_fails_clearly(tmp_path, monkeypatch):
    """What the parametrised test does for a YAML whose format has no builder."""
    monkeypatch.delitem(BUILDERS, "sunrgbd")
    with pytest.raises(pytest.fail.Exception, match="sunrgbd.yaml: format 'sunrgbd' has no fixture builder"):
        test_every_split_converts_as_the_fixture_intends(TAXONOMIES / "sunrgbd.yaml", tmp_path)


def test_generic_builder_covers_every_class(tmp_path):
    """The dense fixture holds every raw id, so the comparison above reaches every class."""
    tax = shipped("mapillary-vistas-v2.0")
    truth = dense_pairs("P")(tax, tmp_path, "validation", 0)
    seen = set(np.unique(np.concatenate([t.label.ravel() for t in truth.values()])).tolist())
    # The last class, Unlabeled, is marked ignore.
    assert seen == set(range(tax.num_classes - 1)) | {tax.ignore_index}


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
            ("image/train/img-000001.jpg", "label37/train/00000001.png", "img-000001"),
            ("image/train/img-005285.jpg", "label37/train/00005285.png", "img-005285"),
        ],
        {},
    ),
    ("sunrgbd", "test", [("image/test/img-000001.jpg", "label37/test/00000001.png", "img-000001")], {}),
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
    ("camvid", "test", [("test/0001TP_008550.png", "testannot/0001TP_008550.png", "0001TP_008550")], {}),
    (
        "youtube-vis-unseen",
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
    tax = shipped(name)
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


def test_index_bare_id_in_two_folders_is_refused(tmp_path):
    tax = with_changes(
        shipped("youtube-vis-unseen"),
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


def test_idd_polygon_only_frame_pairs_by_folder(tmp_path):
    """Two folders hold frame 000001; one has the level-3 PNG, the other only polygons: each frame
    gets its own file, never the other folder's."""
    tax = shipped("idd")
    truth = BUILDERS["idd"](tax, tmp_path, "val", 0)
    items = {i.key: i for i in get_reader("idd").plan(tax, tmp_path, "val")}
    assert items.keys() == truth.keys()
    assert items["a0_s0x0"].annotation.endswith("gtFine/val/a0/s0x0_gtFine_labellevel3Ids.png")
    assert items["b0_s0x0"].annotation.endswith("gtFine/val/b0/s0x0_gtFine_polygons.json")


# --- format_options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", DATASET_YAMLS, ids=lambda p: p.stem)
def test_every_format_option_is_read_by_the_reader(path):
    tax = load(path)
    unread = set(tax.format_options) - FORMATS[tax.format].options
    assert not unread, f"{path.name}: format_options {sorted(unread)} are not read by the {tax.format} reader"


def test_unknown_format_option_is_refused(tmp_path):
    tax = with_changes(
        shipped("cityscapes"),
        tmp_path,
        format_options={"annotation_sufix": "_gtFine_labelIds", "image_suffix": "_leftImg8bit"},
    )
    with pytest.raises(ValueError, match=r"cityscapes: format_options \['annotation_sufix'\] mean nothing"):
        list(get_reader("cityscapes").plan(tax, tmp_path, "val"))


def test_mapillary_version_must_match_the_labels_folder(tmp_path):
    tax = with_changes(shipped("mapillary-vistas-v2.0"), tmp_path, format_options={"version": "v1.2"})
    with pytest.raises(ValueError, match="version is 'v1.2' but split 'training' reads labels from"):
        list(get_reader("mapillary").plan(tax, tmp_path, "training"))
