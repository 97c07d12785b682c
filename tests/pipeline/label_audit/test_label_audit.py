"""ssiw labels: separation score, group ordering, heatmap, and the cross-dataset duplicate audit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.labelspace_fixtures import load_small_taxonomy, shared_minilm, write_taxonomy

from pipeline.embed.run import embed_labels
from pipeline.embed.table import EmbeddingTable, LookupRow, load_table
from pipeline.label_audit.audit import AMBIGUOUS, DUPLICATE, audit_labels, flagged_pairs
from pipeline.label_audit.similarity import group_spans, plot_heatmap, registry_space, separation


@pytest.fixture(scope="session")
def minilm():
    return shared_minilm()


def test_separation_by_hand():
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
    sep = separation(vectors @ vectors.T, ["animals", "animals", "vehicles", "vehicles"])
    # within: a1.a2 = b1.b2 = 0.8; between: 0, 0.6, 0.6, 0.96 -> 0.54
    assert sep.within == pytest.approx(0.8) and sep.between == pytest.approx(0.54)
    assert sep.score == pytest.approx(0.26) and (sep.within_pairs, sep.between_pairs) == (2, 4)
    with pytest.raises(ValueError, match="two labels in one group"):
        separation(np.eye(2), ["animals", "vehicles"])


def test_group_spans():
    assert group_spans(["a", "a", "b", "c", "c"]) == [("a", 0, 2), ("b", 2, 3), ("c", 3, 5)]


def test_space_is_ordered_by_group_and_heatmap_is_written(tmp_path, minilm):
    taxset = load_small_taxonomy(tmp_path / "tax")
    table = load_table(embed_labels(taxset, tmp_path / "cache", minilm).path)
    space = registry_space(table, taxset)
    assert space.keys == [
        "cat",
        "dog",
        "horse",
        "automobile",
        "bus",
        "car",
        "truck",
        "road",
        "sidewalk",
        "sky",
    ]
    assert "beta/pavement" not in space.keys  # per-class overrides are not registry concepts
    sim = space.similarity()
    # MiniLM sentences keep these four groups apart.
    assert separation(sim, space.groups).score > 0.05
    png = plot_heatmap(space, sim, tmp_path / "out" / "sim.png", "test")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 500
    assert [p.name for p in png.parent.iterdir()] == ["sim.png"]


def _table(keys: list[str], vectors: list[list[float]]) -> EmbeddingTable:
    v = np.array(vectors, dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return EmbeddingTable(
        Path("t.parquet"), keys, keys, v, "test", "sentence", "h", [LookupRow("x", 0, "x", keys[0], 0)]
    )


def test_audit_flags_and_other_dataset_rule(tmp_path):
    taxset = load_small_taxonomy(tmp_path / "tax")
    keys = sorted(taxset.registry.labels)
    # Axis per label, except car/automobile (nearly equal) and bus/truck (close but not equal).
    base = {k: np.eye(len(keys))[i] for i, k in enumerate(keys)}
    base["automobile"] = base["car"] + 0.05 * base["automobile"]
    base["truck"] = base["bus"] + 0.7 * base["truck"]
    entries = {e.label: e for e in audit_labels(_table(keys, [base[k] for k in keys]), taxset, top=2)}
    car = entries["car"]
    assert car.datasets == ["alpha"]
    assert car.neighbours[0].label == "automobile" and car.neighbours[0].flag == DUPLICATE
    assert entries["bus"].neighbours[0].label == "truck" and entries["bus"].neighbours[0].flag == AMBIGUOUS
    # Only labels some other dataset uses: bus (alpha) never lists car (alpha only).
    assert all("beta" in n.datasets for n in entries["bus"].neighbours)
    # sky is in both datasets: every other label is used only by datasets sky is already in.
    assert entries["sky"].neighbours == []
    assert flagged_pairs(list(entries.values())) == [
        ("automobile", "car", pytest.approx(0.9988, abs=1e-3), DUPLICATE),
        ("bus", "truck", pytest.approx(0.8192, abs=1e-3), AMBIGUOUS),
    ]
    only_beta = audit_labels(_table(keys, [base[k] for k in keys]), taxset, dataset="beta")
    assert {e.label for e in only_beta} == {"automobile", "truck", "sidewalk", "cat", "horse", "sky"}
    with pytest.raises(KeyError, match="gamma"):
        audit_labels(_table(keys, [base[k] for k in keys]), taxset, dataset="gamma")


def test_cli_similarity_both_modes_and_audit(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    tax = write_taxonomy(tmp_path / "tax")
    common = ["-t", str(tax), "--cache", str(tmp_path / "cache"), "--device", "cpu"]
    out = tmp_path / "fig" / "sim.png"
    result = CliRunner().invoke(app, ["labels", "similarity", "--mode", "both", "--out", str(out), *common])
    assert result.exit_code == 0, result.output
    assert "separation minilm sentence: " in result.output and "separation minilm word: " in result.output
    assert (tmp_path / "fig" / "sim-sentence.png").exists() and (tmp_path / "fig" / "sim-word.png").exists()
    # The command embedded the missing tables itself.
    assert (tmp_path / "cache" / "embeddings" / "minilm-word.parquet").exists()

    result = CliRunner().invoke(app, ["labels", "audit", "--only-flagged", "--ambiguous", "0.7", *common])
    assert result.exit_code == 0, result.output
    assert "automobile ~ car" in result.output
    assert "flagged pair(s) among 10 labels" in result.output
