"""A seeded subset of a split (`ssiw convert --max-samples / --fraction / --subset-seed`, a recipe's cap):
chosen in planning whatever order the items come in, exact in count, and part of every shard's
fingerprint, so changing it redoes the shards and says why (issue #22)."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
import yaml
from support.convert_fakes import TOY_READER, make_toy_dataset, toy_plan, toy_read, toy_taxonomy
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.convert import fingerprint, readers
from pipeline.convert.plan import plan_split
from pipeline.convert.readers.base import FunctionReader
from pipeline.convert.runner import convert_split
from pipeline.convert.shard import ShardOptions
from pipeline.convert.subset import Subset, choose
from pipeline.errors import BadInput

SMALL = 13_000  # about 2 toy samples per shard
KEYS = [f"img_{i:05d}" for i in range(1000)]


def chosen_keys(keys: list[str], subset: Subset) -> set[str]:
    return {keys[i] for i in choose(keys, subset)}


def manifest_keys(out: Path, dataset: str = "toy", split: str = "train") -> set[str]:
    return set(pl.read_parquet(out / dataset / f"{split}.manifest.parquet")["key"].to_list())


def test_the_count_is_exact():
    assert len(choose(KEYS, Subset(max_samples=37))) == 37
    assert len(choose(KEYS, Subset(max_samples=5000))) == 1000  # a cap above the split keeps it whole
    assert len(choose(KEYS, Subset(fraction=0.25))) == 250
    assert len(choose(KEYS[:3], Subset(fraction=0.01))) == 1  # at least one sample
    assert len(choose(KEYS[:10], Subset(fraction=0.15))) == 2  # 1.5 rounds to the nearest, up


def test_the_subset_does_not_depend_on_the_order_items_are_listed_in():
    shuffled = KEYS.copy()
    random.Random(7).shuffle(shuffled)
    for subset in (Subset(max_samples=100), Subset(fraction=0.3, seed=4)):
        assert chosen_keys(KEYS, subset) == chosen_keys(shuffled, subset)


def test_one_seed_nests_smaller_caps_and_another_seed_picks_others():
    small, large = chosen_keys(KEYS, Subset(max_samples=50)), chosen_keys(KEYS, Subset(max_samples=200))
    assert small < large
    other = chosen_keys(KEYS, Subset(max_samples=50, seed=1))
    assert len(other & small) < 25  # about 50 * 50/1000 expected in common
    assert chosen_keys(KEYS, Subset(max_samples=50)) == small  # the same seed, the same subset


def test_a_subset_needs_exactly_one_cap():
    with pytest.raises(BadInput):
        Subset()
    with pytest.raises(BadInput):
        Subset(max_samples=3, fraction=0.5)
    with pytest.raises(BadInput):
        Subset(fraction=1.5)


def test_planning_a_subset_gives_the_same_shards_whatever_order_the_reader_lists(tmp_path):
    root = tmp_path / "root"
    make_toy_dataset(root, 20)

    def reversed_plan(tax, root, split):
        return list(toy_plan(tax, root, split))[::-1]

    tax, subset = toy_taxonomy(), Subset(max_samples=7, seed=3)
    forward = plan_split(TOY_READER, tax, root, "train", SMALL, subset=subset)
    backward = plan_split(FunctionReader(plan=reversed_plan, read=toy_read), tax, root, "train", SMALL, subset=subset)
    assert sum(p.count for p in forward) == 7
    assert [p.fingerprint for p in forward] == [p.fingerprint for p in backward]
    assert [[it.key for it in p.items] for p in forward] == [[it.key for it in p.items] for p in backward]
    assert forward.notes == {"not in the seeded subset (max_samples=7 seed=3)": 13}


def test_a_changed_cap_redoes_the_shards_and_says_why(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    keys = make_toy_dataset(root, 12)

    def run(subset):
        return convert_split(toy_taxonomy(), TOY_READER, root, "train", out, shard_bytes=SMALL, progress=False,
                             options=ShardOptions(subset=subset))

    first = run(Subset(max_samples=6))
    assert first.written == 6 and manifest_keys(out) == chosen_keys(keys, Subset(max_samples=6))
    again = run(Subset(max_samples=6))
    assert again.kept == again.shards and again.redone == {}
    reseeded = run(Subset(max_samples=6, seed=9))
    assert manifest_keys(out) == chosen_keys(keys, Subset(max_samples=6, seed=9))
    assert set(reseeded.redone) == {fingerprint.SUBSET_CHANGED}
    whole = run(None)  # the cap removed: every sample, the shards redone for the same reason
    assert whole.written == 12 and set(whole.redone) == {fingerprint.SUBSET_CHANGED}


def test_without_a_subset_the_recorded_inputs_are_what_they_were_before_subsets():
    # Shards converted before subsets existed keep matching: no `subset` entry unless there is one.
    inputs = ShardOptions().inputs(toy_taxonomy(), TOY_READER)
    assert set(inputs) == {"taxonomy", "reader", "options"}
    assert ShardOptions(subset=Subset(fraction=0.5)).inputs(toy_taxonomy(), TOY_READER)["subset"] == "fraction=0.5 seed=0"


def test_a_stored_plan_of_compact_columns_keeps_the_subset(tmp_path):
    """Objects365's reader plans ItemColumns (1.7M images at full size): the subset indexes them in place."""
    from pipeline.demo.corpus import CorpusSize, write_corpus
    from pipeline.taxonomy.load import load_taxonomy_set

    roots = write_corpus(tmp_path / "demo", CorpusSize(train=15, val=2, image_size=64), seed=2)
    tax = load_taxonomy_set(tmp_path / "demo" / "taxonomies").dataset("demo-objects365")
    reader = readers.get_reader(tax.format)
    planned = reader.plan(tax, roots["demo-objects365"], "train")
    assert type(planned).__name__ == "ItemColumns"
    subset = Subset(fraction=0.4, seed=5)
    result = convert_split(tax, reader, roots["demo-objects365"], "train", tmp_path / "out", shard_bytes=10**9,
                           progress=False, options=ShardOptions(subset=subset))
    assert result.written == 6
    assert manifest_keys(tmp_path / "out", "demo-objects365") == chosen_keys(planned.keys, subset)


@pytest.fixture
def toy_cli(tmp_path: Path, monkeypatch):
    tax_dir = tmp_path / "taxonomies"
    tax_dir.mkdir()
    (tax_dir / "labels.yaml").write_text(yaml.safe_dump({"standalone": True, "labels": {
        "thing": {"name": "thing", "wikipedia": "Object", "group": "other", "description": "Something."}}}))
    (tax_dir / "toy-a.yaml").write_text(yaml.safe_dump({
        "name": "toy-a", "version": "1", "homepage": "https://example.org", "format": "png_folder",
        "supervision": "dense", "splits": {"train": {"images": "train/images", "annotations": "train/labels"}},
        "ignore_values": [0], "classes": [{"name": f"c{i}", "label": "thing", "raw_id": i + 1} for i in range(3)]}))
    make_toy_dataset(tmp_path / "data", 10)
    monkeypatch.setattr(readers, "get_reader", lambda fmt: TOY_READER)
    return tmp_path


def convert_cli(base: Path, *extra: str):
    args = ["convert", "toy-a", "--root", base / "data", "--out", base / "out", "--taxonomies", base / "taxonomies",
            "--no-ray", *extra]
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_convert_takes_the_subset_on_its_command_line(toy_cli):
    result = convert_cli(toy_cli, "--max-samples", "4", "--subset-seed", "2")
    assert result.exit_code == 0, result.output
    assert len(manifest_keys(toy_cli / "out", "toy-a")) == 4
    assert "not in the seeded subset (max_samples=4 seed=2)" in result.output
    result = convert_cli(toy_cli, "--fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert len(manifest_keys(toy_cli / "out", "toy-a")) == 5
    assert "subset changed" in result.output
    both = convert_cli(toy_cli, "--fraction", "0.5", "--max-samples", "3")
    assert both.exit_code == 1 and "not both" in both.output
