"""Helpers the reader tests share: read a split, plain reference mappings, and expecting a BadSample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.convert.layouts.paired import Pair
from pipeline.convert.readers import BadSample, get_reader
from pipeline.convert.readers.common import sanitize_key
from pipeline.taxonomy.load import load_dataset_file
from support.generated import jpeg, write
from support.layout import place, shipped


def read_one(tax, root, split):
    reader = get_reader(tax.format)
    [item] = list(reader.plan(tax, root, split))
    return reader.read(tax, item)


def check_counts(sample):
    """label_counts, when a reader gives them, are the label's histogram."""
    assert sample.label_counts is not None
    want = np.bincount(sample.label.ravel(), minlength=sample.label_counts.size)
    assert np.array_equal(sample.label_counts, want)


def bad(tax, item) -> BadSample:
    with pytest.raises(BadSample) as info:
        get_reader(tax.format).read(tax, item)
    return info.value


def read_by_key(tax, root, split):
    reader = get_reader(tax.format)
    items = list(reader.plan(tax, root, split))
    return items, {item.key: reader.read(tax, item) for item in items}


def read_all(tax, root: Path, split: str):
    reader = get_reader(tax.format)
    items = list(reader.plan(tax, root, split))
    return items, [reader.read(tax, item) for item in items]


def outcome(tax, root, split) -> tuple[dict, dict]:
    """(key -> Sample, key -> BadSample) for every planned item, as the converter would read them."""
    reader = get_reader(tax.format)
    good, bad = {}, {}
    for item in reader.plan(tax, root, split):
        try:
            good[item.key] = reader.read(tax, item)
        except BadSample as e:
            bad[item.key] = e
    return good, bad


def check_sample(sample, image_path: Path) -> None:
    assert sample.image_bytes == image_path.read_bytes()
    with Image.open(image_path) as im:
        assert (sample.width, sample.height) == im.size
        assert sample.image_ext == {"JPEG": "jpg", "PNG": "png"}[im.format]
    if sample.label is not None:
        assert sample.label.shape == (sample.height, sample.width)
    assert sample.key == sanitize_key(sample.key)


def coco_root(real_fixtures: Path, tmp_path: Path, tax, split: str) -> Path:
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


def load_yaml(path: Path):
    tax, problems = load_dataset_file(path)
    assert tax is not None and not problems, f"{path}: {[str(p) for p in problems]}"
    return tax


def ade_sample(tmp_path, raw: np.ndarray):
    tax = shipped("ade20k-150")
    write(tax, tmp_path, "validation", [Pair("ADE_val_1", jpeg(raw.shape[1], raw.shape[0]), raw)])
    return tax, read_one(tax, tmp_path, "validation")
