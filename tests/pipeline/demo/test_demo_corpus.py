"""The demo corpus is written in the datasets' real layouts and its taxonomies are valid."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from pipeline.demo.corpus import CorpusSize, write_corpus
from pipeline.taxonomy.load import validate_folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    roots = write_corpus(out, CorpusSize(train=6, val=3, image_size=96), seed=3)
    return out, roots


def test_taxonomies_validate_and_heldout_names_are_new(corpus):
    out, _ = corpus
    taxset, problems = validate_folder(out / "taxonomies")
    assert problems == []
    heldout = taxset.dataset("demo-heldout")
    train = [t for t in taxset.datasets.values() if t.role.value == "train"]
    assert len(train) == 4
    train_names = {n for t in train for n in t.class_names}
    train_labels = {lab for t in train for lab in t.class_labels}
    assert not set(heldout.class_names) & train_names
    assert not set(heldout.class_labels) & train_labels


def test_coco_panoptic_ids_match_segments_info(corpus):
    _, roots = corpus
    root = roots["demo-coco"]
    doc = json.loads((root / "annotations" / "panoptic_train2017.json").read_text())
    assert len(doc["annotations"]) == 6
    for ann in doc["annotations"]:
        rgb = np.asarray(Image.open(root / "annotations" / "panoptic_train2017" / ann["file_name"])).astype(np.int32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        areas = {s["id"]: s["area"] for s in ann["segments_info"]}
        present = set(np.unique(ids).tolist()) - {0}
        assert present == set(areas)
        for seg_id, area in areas.items():
            assert int((ids == seg_id).sum()) == area


def test_openimages_rows_point_at_existing_masks(corpus):
    _, roots = corpus
    root = roots["demo-openimages"]
    with open(root / "train-annotations-object-segmentation.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows, "no objects written"
    for row in rows:
        mask = root / "train-masks" / row["MaskPath"]
        assert mask.is_file()
        assert row["MaskPath"].startswith(f"{row['ImageID']}_{row['LabelName'].replace('/', '')}_")
        assert 0.0 <= float(row["BoxXMin"]) < float(row["BoxXMax"]) <= 1.0


def test_objects365_boxes_inside_images(corpus):
    _, roots = corpus
    doc = json.loads((roots["demo-objects365"] / "annotations" / "zhiyuan_objv2_train.json").read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in doc["images"]}
    assert doc["annotations"]
    for ann in doc["annotations"]:
        x, y, w, h = ann["bbox"]
        W, H = sizes[ann["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w > 0 and h > 0


def test_same_seed_same_corpus(tmp_path):
    a = write_corpus(tmp_path / "a", CorpusSize(train=2, val=1, image_size=64), seed=1)
    b = write_corpus(tmp_path / "b", CorpusSize(train=2, val=1, image_size=64), seed=1)
    for name in a:
        files_a = sorted(p.relative_to(a[name]) for p in a[name].rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b[name]) for p in b[name].rglob("*") if p.is_file())
        assert files_a == files_b
        for rel in files_a:
            assert (a[name] / rel).read_bytes() == (b[name] / rel).read_bytes(), rel
