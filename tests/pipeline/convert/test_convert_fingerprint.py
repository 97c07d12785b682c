"""A finished shard is kept only while its bytes would be the same: the fingerprint covers the
taxonomy's mapping and the reader's format version besides the files, and the run says why it redid
shards (issue #19)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_plan, toy_read, toy_taxonomy

from pipeline.convert import fingerprint
from pipeline.convert.readers.base import FunctionReader
from pipeline.convert.runner import convert_split
from pipeline.taxonomy.formats import FORMAT_INFO

SMALL = 13_000  # about 2 toy samples per shard


@dataclass(frozen=True)
class NamedReader(FunctionReader):
    """The toy reader with a registry entry's name and FORMAT VERSION."""

    name: str = "toy"
    version: int = 1


def run(root: Path, out: Path, tax, reader=TOY_READER):
    return convert_split(tax, reader, root, "train", out, shard_bytes=SMALL, progress=False)


def labels(out: Path) -> dict[str, np.ndarray]:
    found = {}
    for tar in sorted((out / "toy").glob("train-*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".label.png"):
                    found[m.name] = np.asarray(Image.open(io.BytesIO(tf.extractfile(m).read())))
    return found


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_toy_dataset(tmp_path / "root", 7)
    return tmp_path / "root"


def swapped(tax, a: int, b: int):
    classes = list(tax.classes)
    classes[a], classes[b] = classes[b], classes[a]
    return tax.model_copy(update={"classes": classes})


def test_swapping_two_classes_redoes_every_shard_and_says_why(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    tax = toy_taxonomy()
    first = run(root, out, tax)
    before = labels(out)
    second = run(root, out, swapped(tax, 0, 1))
    assert second.kept == 0 and second.shards == first.shards
    assert second.redone == {fingerprint.TAXONOMY_CHANGED: first.shards}
    after = labels(out)
    assert before.keys() == after.keys()
    for name, old in before.items():  # class 0 and 1 traded places, nothing else moved
        expect = old.copy()
        expect[old == 0], expect[old == 1] = 1, 0
        np.testing.assert_array_equal(after[name], expect)


@pytest.mark.parametrize("change", [
    lambda t: t.model_copy(update={"ignore_values": []}),
    lambda t: t.model_copy(update={"format_options": {"mode": "index"}}),
    lambda t: t.model_copy(update={"classes": [t.classes[0].model_copy(update={"ignore": True}), *t.classes[1:]]}),
    lambda t: t.model_copy(update={"classes": [t.classes[0].model_copy(update={"color": (1, 2, 3)}), *t.classes[1:]]}),
    lambda t: t.model_copy(update={"classes": [t.classes[0].model_copy(update={"raw_id": None, "raw_ids": [1, 9]}),
                                               *t.classes[1:]]}),
], ids=["ignore_values", "format_options", "class ignore", "colour", "raw ids"])
def test_every_part_of_the_mapping_is_in_the_fingerprint(root: Path, tmp_path: Path, change):
    out = tmp_path / "out"
    tax = toy_taxonomy()
    run(root, out, tax)
    again = run(root, out, change(tax))
    assert again.kept == 0 and set(again.redone) == {fingerprint.TAXONOMY_CHANGED}


def test_names_and_labels_never_reach_a_shard_so_editing_them_keeps_it(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    tax = toy_taxonomy()
    first = run(root, out, tax)
    renamed = tax.model_copy(update={"classes": [c.model_copy(update={"name": c.name + "-x", "label": "other"})
                                                 for c in tax.classes], "notes": "edited"})
    again = run(root, out, renamed)
    assert again.kept == first.shards and again.redone == {}


def test_a_new_reader_format_version_redoes_its_shards(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    tax = toy_taxonomy()
    first = run(root, out, tax, NamedReader(plan=toy_plan, read=toy_read, version=1))
    assert run(root, out, tax, NamedReader(plan=toy_plan, read=toy_read, version=1)).kept == first.shards
    again = run(root, out, tax, NamedReader(plan=toy_plan, read=toy_read, version=2))
    assert again.kept == 0
    assert again.redone == {f"{fingerprint.READER_CHANGED} (toy v1 -> toy v2)": first.shards}


def test_every_registry_format_has_a_version():
    assert all(isinstance(f.version, int) and f.version >= 1 for f in FORMAT_INFO.values())
