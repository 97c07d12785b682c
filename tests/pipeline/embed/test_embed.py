"""ssiw embed: encoders by name, the embedding table and lookup, idempotent runs, ad-hoc labels."""

from __future__ import annotations

import numpy as np
import pytest
from support.labelspace_fixtures import load_small_taxonomy, shared_minilm, write_taxonomy

from pipeline.embed.adhoc import encode_labels, parse_label, parse_labels
from pipeline.embed.encoders import EncoderError, get_encoder
from pipeline.embed.run import embed_labels
from pipeline.embed.table import load_table, lookup_path

SMALL_CLIP = "open_clip:ViT-S-32-alt:random"  # the smallest built-in text tower (256-d, 10 layers)


@pytest.fixture(scope="session")
def minilm():
    return shared_minilm()  # loaded once for the whole session


@pytest.fixture(scope="module")
def small_clip():
    enc = get_encoder(SMALL_CLIP, "cpu")
    enc.model()
    return enc


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_table_rows_lookup_and_vectors(tmp_path, minilm):
    taxset = load_small_taxonomy(tmp_path / "tax")
    result = embed_labels(taxset, tmp_path / "cache", minilm, "sentence")
    assert result.path == tmp_path / "cache" / "embeddings" / "minilm-sentence.parquet"
    table = load_table(result.path)
    # Ten registry labels plus the one class with a description override.
    assert len(table.labels) == 11 and table.labels[-1] == "beta/pavement"
    assert table.dim == 384 and table.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)
    assert table.encoder == "minilm" and table.mode == "sentence"
    assert (
        table.texts[table.row_of("bus")]
        == "An image of bus. A bus is a large road vehicle that carries many passengers."
    )
    rows = table.rows_for("beta")
    assert [table.labels[r] for r in rows] == ["automobile", "truck", "beta/pavement", "cat", "horse", "sky"]
    assert table.vectors_for("alpha").shape == (5, 384)
    with pytest.raises(KeyError, match="no dataset 'gamma'"):
        table.rows_for("gamma")


def test_minilm_puts_bus_nearer_truck_than_cat(tmp_path, minilm):
    taxset = load_small_taxonomy(tmp_path / "tax")
    for mode in ("sentence", "word"):
        table = load_table(embed_labels(taxset, tmp_path / "cache", minilm, mode).path)
        bus, truck, cat = (table.vectors[table.row_of(k)] for k in ("bus", "truck", "cat"))
        assert cos(bus, truck) > cos(bus, cat) + 0.1, mode


def test_word_mode_is_names_only_and_overrides_share_the_label_row(tmp_path, minilm):
    taxset = load_small_taxonomy(tmp_path / "tax")
    table = load_table(embed_labels(taxset, tmp_path / "cache", minilm, "word").path)
    assert len(table.labels) == 10 and "beta/pavement" not in table.labels
    assert table.texts[table.row_of("sidewalk")] == "sidewalk"
    assert table.labels[table.rows_for("beta")[2]] == "sidewalk"


def test_rerun_with_unchanged_inputs_does_nothing(tmp_path, minilm):
    tax = write_taxonomy(tmp_path / "tax")
    from pipeline.taxonomy.load import load_taxonomy_set

    first = embed_labels(load_taxonomy_set(tax), tmp_path / "cache", minilm)
    stamp = first.path.stat().st_mtime_ns
    again = embed_labels(load_taxonomy_set(tax), tmp_path / "cache", minilm)
    assert again.skipped and again.path.stat().st_mtime_ns == stamp
    # A changed description is a changed input.
    labels = tax / "labels.yaml"
    labels.write_text(labels.read_text().replace("kept as a pet.}", "that purrs.}", 1))
    changed = embed_labels(load_taxonomy_set(tax), tmp_path / "cache", minilm)
    assert not changed.skipped
    table = load_table(changed.path)
    assert "purrs" in table.texts[table.row_of("cat")]
    assert embed_labels(load_taxonomy_set(tax), tmp_path / "cache", minilm, force=True).skipped is False


def test_open_clip_random_small_model(tmp_path, small_clip):
    taxset = load_small_taxonomy(tmp_path / "tax")
    result = embed_labels(taxset, tmp_path / "cache", small_clip, "sentence")
    assert result.path.name == "open_clip-ViT-S-32-alt-random-sentence.parquet"
    table = load_table(result.path)
    assert table.vectors.shape == (11, 256)
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)
    assert table.encoder == SMALL_CLIP
    # Deterministic: a fresh encoder builds the same random weights and gives the same vectors.
    fresh = get_encoder(SMALL_CLIP, "cpu").encode(table.texts[:3])
    np.testing.assert_allclose(fresh, table.vectors[:3], atol=1e-6)
    # Switching encoder writes a separate table; the MiniLM one is untouched by it.
    assert not (tmp_path / "cache" / "embeddings" / "minilm-sentence.parquet").exists()


def test_open_clip_without_weights_says_how_to_supply_them(tmp_path):
    with pytest.raises(EncoderError, match="pass its path"):
        get_encoder("open_clip:ViT-B-32:openai", "cpu").encode(["a cat"])
    with pytest.raises(EncoderError, match="checkpoint file not found"):
        get_encoder(f"open_clip:ViT-B-32:{tmp_path}/absent.bin", "cpu").encode(["a cat"])
    with pytest.raises(EncoderError, match="no model 'ViT-Q-99'"):
        get_encoder("open_clip:ViT-Q-99:random", "cpu").encode(["a cat"])


def test_encoder_names():
    assert get_encoder("open_clip").spec == "open_clip:ViT-B-32:openai"
    assert get_encoder("open_clip").id == "open_clip-ViT-B-32-openai"
    path_id = get_encoder("open_clip:ViT-B-32:/ckpt/dir/model.bin").id
    assert path_id.startswith("open_clip-ViT-B-32-model-") and "/" not in path_id
    with pytest.raises(EncoderError, match="unknown encoder 'bert'"):
        get_encoder("bert")
    with pytest.raises(EncoderError, match="no arguments"):
        get_encoder("minilm:large")


def test_adhoc_labels_parse_and_encode_like_the_table(tmp_path, minilm):
    deer = parse_label("deer: A deer is a hoofed mammal with antlers.")
    assert deer.text() == "An image of deer. A deer is a hoofed mammal with antlers."
    assert parse_label(" okapi ").text() == "An image of okapi."
    assert deer.text("word") == "deer"
    with pytest.raises(ValueError, match="give a name"):
        parse_label(": no name")
    with pytest.raises(ValueError, match="empty"):
        parse_label("deer:  ")
    with pytest.raises(ValueError, match="given twice"):
        parse_labels(["deer", "deer: again"])
    taxset = load_small_taxonomy(tmp_path / "tax")
    table = load_table(embed_labels(taxset, tmp_path / "cache", minilm).path)
    bus_text = "bus: " + table.texts[table.row_of("bus")].removeprefix("An image of bus. ")
    vectors = encode_labels(["lorry: A lorry is a big motor vehicle for goods.", bus_text], minilm)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors[1], table.vectors[table.row_of("bus")], atol=1e-5)
    truck, cat = table.vectors[table.row_of("truck")], table.vectors[table.row_of("cat")]
    assert cos(vectors[0], truck) > cos(vectors[0], cat)


def test_load_table_errors_name_the_file(tmp_path, minilm):
    with pytest.raises(FileNotFoundError, match="absent-sentence.parquet"):
        load_table(tmp_path / "absent-sentence.parquet")
    taxset = load_small_taxonomy(tmp_path / "tax")
    path = embed_labels(taxset, tmp_path / "cache", minilm).path
    lookup_path(path).unlink()
    with pytest.raises(FileNotFoundError, match="lookup.parquet"):
        load_table(path)
    # Without its lookup the table is not current: the next run writes both again.
    assert not embed_labels(taxset, tmp_path / "cache", minilm).skipped
    table = load_table(path)
    assert table.rows_for("alpha").tolist() == [table.row_of(k) for k in ("road", "car", "bus", "sky", "dog")]


def test_cli_embed_twice(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    tax = write_taxonomy(tmp_path / "tax")
    args = [
        "embed",
        "-t",
        str(tax),
        "--cache",
        str(tmp_path / "cache"),
        "--encoder",
        SMALL_CLIP,
        "--device",
        "cpu",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "wrote" in first.output and "11 rows" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "up to date" in second.output
    bad = CliRunner().invoke(app, args[:-4] + ["--mode", "phrase"])
    assert bad.exit_code == 1 and "unknown mode 'phrase'" in bad.output
