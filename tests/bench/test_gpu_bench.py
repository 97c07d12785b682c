"""bench.gpu_bench runs only where a GPU is lent, so its whole path (synthetic shard, stream with 0 and
1 loader workers, the trainer's loss at a chosen K, timing, the table and JSON) is run here on CPU
with a tiny model, to find its bugs before GPU time is spent on it."""

from __future__ import annotations

import json

import pytest

from bench import gpu_bench
from pipeline.taxonomy.load import load_taxonomy_set
from pipeline.taxonomy.schema import Role


def test_full_label_space_spans_every_training_taxonomy():
    taxonomies = load_taxonomy_set()
    training = [t for t in taxonomies.datasets.values() if t.role == Role.train]
    k = gpu_bench.full_label_space()
    # more than any one taxonomy has (the union), no more than the registry holds
    assert max(t.num_classes for t in training) < k <= len(taxonomies.registry.labels)
    # labels only the zero-shot evaluation taxonomies use are left out
    everything = {c.label for t in taxonomies.datasets.values() for c in t.classes}
    assert k < len(everything)


def test_runs_its_whole_path_on_cpu_with_each_worker_count(tmp_path, capsys):
    out = tmp_path / "gpu-bench.json"
    gpu_bench.main(["--device", "cpu", "--model", "tiny", "--dim", "16", "--crop", "64", "--labels", "40",
                    "--steps", "2", "--images", "3", "--short", "96", "--workers", "0", "1", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [r["loader_workers"] for r in rows] == [0, 1]
    for r in rows:
        assert (r["device"], r["model"], r["labels"], r["crop"], r["batch"]) == ("cpu", "tiny", 40, 64, 2)
        assert r["step_s_on_device"] > 0 and r["step_s_streamed"] > 0
        assert 0 < r["gpu_busy_fraction"] <= 1
        assert 0 <= r["data_wait_s_per_step"] < r["step_s_streamed"]
        assert "peak_gpu_memory_gib" not in r  # a CPU run reports no GPU memory
    assert "loader_workers" in capsys.readouterr().out  # the table was printed


def test_refuses_fewer_labels_than_the_synthetic_classes():
    with pytest.raises(SystemExit, match="at least 19"):
        gpu_bench.run([0], device="cpu", model_name="tiny", dim=16, crop=64, labels=5, steps=1, images=1, short=96)
