"""The conversion benchmark's synthetic inputs convert cleanly in every case: a benchmark that measured
quarantining (a wrong layout, an unknown raw id) would report a rate for work that was never done."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.convert_inputs import CASES, generate
from pipeline.convert.plan import plan_split
from pipeline.convert.readers import get_reader
from pipeline.convert.shard import ShardOptions, convert_shard
from pipeline.paths import default_taxonomy_dir
from pipeline.taxonomy.load import load_dataset_file


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_every_generated_sample_converts(case, tmp_path: Path):
    fmt, yaml_name, split, *_ = case
    tax, problems = load_dataset_file(default_taxonomy_dir() / yaml_name)
    assert tax is not None, problems
    generate(fmt, tax, tmp_path / "root", split, 3, 256, 192, templates=2)
    reader = get_reader(tax.format)
    plans = plan_split(reader, tax, tmp_path / "root", split, 10**9)
    done = [convert_shard(tax, reader, p, tmp_path / "out", ShardOptions()) for p in plans]
    assert sum(d["written"] for d in done) == 3 and sum(d["quarantined"] for d in done) == 0
