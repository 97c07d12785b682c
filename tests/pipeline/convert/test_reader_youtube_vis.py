"""YouTube-VIS: the release's instances JSON (per-frame RLE masks per object track, compressed or
uncompressed counts) into per-frame class maps, and the paper's unseen-label test with `ssiw convert`
and `ssiw eval` alone."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.convert.readers import BadSample, get_reader
from tests.support.layout import shipped, with_changes
from tests.support.youtube_vis import CATEGORIES_2019, Track, write_youtube_vis

H, W = 24, 32


def _masks():
    lizard = np.zeros((H, W), np.uint8)
    lizard[4:20, 2:18] = 1
    person = np.zeros((H, W), np.uint8)
    person[10:16, 8:30] = 1  # overlaps the lizard; smaller, so painted on top
    duck = np.zeros((H, W), np.uint8)
    duck[1:5, 25:31] = 1
    return lizard, person, duck


def _write(root, tax, compressed=True):
    lizard, person, duck = _masks()
    videos = {
        "0a1b2c3d4e": [Track(3, [lizard, lizard, None]), Track(1, [person, None, person]), Track(13, [None, None, duck])],
        "9f8e7d6c5b": [Track(8, [lizard, lizard, lizard])],  # a dog only: not a frame of the five classes
    }
    return write_youtube_vis(tax, root, "train", videos, size=(H, W), compressed=compressed)


@pytest.mark.parametrize("compressed", [True, False])
def test_frames_become_class_maps(tmp_path, compressed):
    tax = shipped("youtube-vis-unseen")
    assert {c.raw_id: c.name for c in tax.classes} == {3: "lizard", 35: "shark", 37: "frog", 25: "deer", 13: "duck"}
    assert all(CATEGORIES_2019[c.raw_id] == c.name for c in tax.classes)  # the release's own ids
    assert sorted(tax.ignore_values) == [0] + [i for i in CATEGORIES_2019 if i not in (3, 13, 25, 35, 37)]
    frames = _write(tmp_path, tax, compressed)
    reader = get_reader("youtube_vis")
    items = list(reader.plan(tax, tmp_path, "train"))
    # frame 1 of the first video: only the lizard; frame 2: person and duck; the dog video is left out
    assert [i.key for i in items] == ["0a1b2c3d4e_00000", "0a1b2c3d4e_00005", "0a1b2c3d4e_00010"]
    lizard, person, duck = _masks()
    ignore = tax.ignore_index
    for item, present in zip(items, (("lizard", "person"), ("lizard",), ("person", "duck"))):
        sample = reader.read(tax, item)
        assert sample.image_bytes == frames[item.key].read_bytes()
        want = np.full((H, W), ignore, np.uint8)  # background and other categories: ignored
        if "lizard" in present:
            want[lizard == 1] = 0
        if "person" in present:
            want[person == 1] = ignore  # person is not one of the five: ignored even over the lizard
        if "duck" in present:
            want[duck == 1] = 4
        assert sample.label.dtype == np.uint8 and np.array_equal(sample.label, want), item.key
        assert sample.sources["image"].startswith("train/JPEGImages/0a1b2c3d4e/")


def test_all_frames_option_and_bad_entries(tmp_path):
    tax = with_changes(shipped("youtube-vis-unseen"), tmp_path, format_options={"frames": "all"})
    _write(tmp_path, tax)
    reader = get_reader("youtube_vis")
    items = list(reader.plan(tax, tmp_path, "train"))
    assert len(items) == 6  # every annotated frame, the dog video's too
    index = tmp_path / tax.splits["train"].index
    doc = json.loads(index.read_text())
    doc["annotations"][0]["category_id"] = 99  # not a YouTube-VIS 2019 category
    doc["annotations"][1]["segmentations"] = doc["annotations"][1]["segmentations"][:2]  # one frame short
    index.write_text(json.dumps(doc))
    items = list(reader.plan(tax, tmp_path, "train"))
    bad = [i for i in items if i.key.startswith("0a1b2c3d4e")]
    with pytest.raises(BadSample, match="annotation 2 has 2 segmentations for 3 frames"):
        reader.read(tax, bad[0])
    fine = [i for i in items if i.key.startswith("9f8e7d6c5b")]
    assert reader.read(tax, fine[0]).label is not None  # other videos still convert
    doc["annotations"][1]["segmentations"].append(None)
    index.write_text(json.dumps(doc))
    item = next(i for i in reader.plan(tax, tmp_path, "train") if i.key == "0a1b2c3d4e_00000")
    with pytest.raises(BadSample, match="category id 99 not in taxonomy 'youtube-vis-unseen'"):
        reader.read(tax, item)


def test_unseen_label_test_with_convert_and_eval_alone(tmp_path):
    """Convert the frames, train a tiny model with lizard held out (duck not), and evaluate: the report
    says which of the five labels the model saw."""
    from pipeline.cli import app
    from tests.support.synthetic import SyntheticSpec, TinyTable, write_synthetic_dataset, write_tiny_table
    from trainer.config import TrainConfig
    from trainer.train import run_training

    tax = shipped("youtube-vis-unseen")
    _write(tmp_path / "ytvis", tax)
    shards = tmp_path / "shards"
    runner = CliRunner()
    res = runner.invoke(app, ["convert", "youtube-vis-unseen", "--root", str(tmp_path / "ytvis"), "--out", str(shards),
                              "--no-ray"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "written 3 samples, quarantined 0" in res.output

    write_synthetic_dataset(shards, SyntheticSpec("a", samples=8, size=(40, 40)))
    labels = ["lizard", "shark", "frog", "deer", "duck", "thing_a", "thing_b"]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(labels), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = TinyTable(labels, vectors, {"a": [5, 0, 4, 6], "youtube-vis-unseen": [0, 1, 2, 3, 4]})
    cfg = TrainConfig(out_dir=tmp_path / "runs", shards=shards, datasets=[{"name": "a"}], model="tiny",
                      short_edge=40, crop=(32, 32), batch_size=2, steps=2, epoch_samples=8, workers=0,
                      checkpoint_every=2, held_out_labels=["lizard"])
    run_training(cfg, table=table, progress=False)
    out = tmp_path / "eval"
    res = runner.invoke(app, ["eval", str(cfg.run_dir), "--dataset", "youtube-vis-unseen", "--shards", str(shards),
                              "--split", "train", "--table", str(write_tiny_table(tmp_path / "t.parquet", table)),
                              "--multi-scales", "", "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["images"] == 3
    assert results["seen_in_training"] == {"lizard": False, "shark": False, "frog": False, "deer": False, "duck": True}
    assert "unseen, zero-shot (4): lizard, shark, frog, deer" in " ".join(res.output.split())
    assert set(results["single_scale"]["per_class"]) == {"lizard", "shark", "frog", "deer", "duck"}


def test_frame_file_name_outside_the_images_folder_is_quarantined_not_read(tmp_path):
    tax = shipped("youtube-vis-unseen")
    _write(tmp_path, tax)
    index = tmp_path / tax.splits["train"].index
    doc = json.loads(index.read_text())
    doc["videos"][0]["file_names"][0] = "../../../../secret.jpg"
    index.write_text(json.dumps(doc))
    reader = get_reader("youtube_vis")
    items = list(reader.plan(tax, tmp_path, "train"))
    escaped = [i for i in items if "secret" in (i.error or "")]
    assert len(escaped) == 1 and "'..'" in escaped[0].error and "secret" not in escaped[0].image
    with pytest.raises(BadSample) as err:
        reader.read(tax, escaped[0])
    assert err.value.path == str(index)
    assert all(reader.read(tax, i).label is not None for i in items if i is not escaped[0])
