"""`ssiw pseudo-label`: a run's predictions become coarse shards (record names the run and labels) that
train with L_LD, or plain label PNGs; re-runs keep finished work."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.shard_format import parse_sample
from pipeline.shards.read import shard_samples
from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset
from trainer.config import TrainConfig
from trainer.train import run_training

SIZES = {"a": 4, "a-pseudo": 4}  # shared rows: class i of both is table row i


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    shards = tmp_path_factory.mktemp("shards")
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=8, size=(40, 40)))
    cfg = TrainConfig(out_dir=tmp_path_factory.mktemp("runs"), name="teacher", shards=shards,
                      datasets=[{"name": "a"}], model="tiny", short_edge=40, crop=(32, 32), scale=(0.8, 1.2),
                      batch_size=4, steps=60, epoch_samples=40, lr=1e-2, workers=0, checkpoint_every=60,
                      shuffle_buffer=8)
    run_training(cfg, table=tiny_table(SIZES), progress=False)
    return shards, cfg.run_dir


def _samples(tar_paths):
    skipped = []
    out = {raw["__key__"]: parse_sample(raw) for raw in shard_samples(map(str, tar_paths), skipped.append)}
    assert skipped == []
    return out


def _invoke(*args):
    result = CliRunner().invoke(app, ["pseudo-label", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_pseudo_label_shards_record_the_run_and_train_with_ld(trained, tmp_path):
    shards, run = trained
    out = tmp_path / "pseudo"
    _invoke(run, "--shards", shards, "--dataset", "a", "--split", "training", "--out", out, "--confidence", "0.6")
    tars = sorted((out / "a-pseudo").glob("training-*.tar"))
    assert tars and (out / "a-pseudo" / "training.manifest.parquet").is_file()
    made = _samples(tars)
    truth = _samples(sorted((shards / "a").glob("training-*.tar")))
    assert set(made) == set(truth) and len(made) == 8
    agree = []
    for key, s in made.items():
        rec = s.record
        assert rec.dataset == "a-pseudo" and rec.supervision.value == "coarse" and rec.ignore_index == 255
        assert rec.pseudo_label.run == str(run.resolve()) and rec.pseudo_label.step == 60
        assert rec.pseudo_label.labels == ["class_0", "class_1", "class_2", "class_3"]
        assert rec.pseudo_label.label_space == "run" and rec.pseudo_label.from_dataset == "a"
        assert rec.pseudo_label.confidence == 0.6
        assert s.image == truth[key].image  # the original image bytes, untouched
        label = np.asarray(Image.open(io.BytesIO(s.label_png)))
        gt = np.asarray(Image.open(io.BytesIO(truth[key].label_png)))
        assert set(np.unique(label)) <= {0, 1, 2, 3, 255}
        kept = label != 255
        agree.append((label[kept] == gt[kept]).mean())
    print("pseudo-label agreement with the truth:", np.mean(agree))
    assert np.mean(agree) > 0.8

    cfg = TrainConfig(out_dir=tmp_path / "runs", name="student", shards=out, datasets=[{"name": "a-pseudo"}],
                      model="tiny", short_edge=40, crop=(32, 32), scale=(0.8, 1.2), batch_size=2, steps=2,
                      epoch_samples=8, lr=1e-2, workers=0, checkpoint_every=2, shuffle_buffer=4)
    summary = run_training(cfg, table=tiny_table(SIZES), progress=False)
    assert summary["step"] == 2
    assert all("ld" in h and "hd" not in h for h in summary["history"])  # coarse supervision: L_LD


def test_pseudo_label_reads_source_shards_from_s3(trained, tmp_path, s3_bucket):
    import fsspec

    shards, run = trained
    fsspec.filesystem("s3", skip_instance_cache=True).put(str(shards / "a"), f"{s3_bucket}/src/a", recursive=True)
    out = tmp_path / "pseudo"
    said = _invoke(run, "--shards", f"{s3_bucket}/src", "--dataset", "a", "--split", "training", "--out", out)
    assert "8 samples, 0 quarantined" in said
    made = _samples(sorted((out / "a-pseudo").glob("training-*.tar")))
    truth = _samples(sorted((shards / "a").glob("training-*.tar")))
    assert set(made) == set(truth)
    for key, s in made.items():
        assert s.image == truth[key].image and s.record.pseudo_label.from_dataset == "a"
        assert s.record.sources == {"image": truth[key].record.sources["image"]}


def test_damaged_source_samples_are_quarantined_with_the_readers_reason(trained, tmp_path):
    import shutil

    shards, run = trained
    copy = tmp_path / "src"
    shutil.copytree(shards / "a", copy / "a")
    tar = min((copy / "a").glob("training-*.tar"))
    with tarfile.open(tar) as tf:
        image = tf.getmembers()[0]  # the first sample's image
    data = bytearray(tar.read_bytes())
    data[image.offset_data + image.size // 2] ^= 0x10
    tar.write_bytes(bytes(data))
    out = tmp_path / "pseudo"
    said = _invoke(run, "--shards", copy, "--dataset", "a", "--split", "training", "--out", out)
    assert "7 samples, 1 quarantined" in said
    [entry] = [json.loads(line) for line in (out / "a-pseudo" / "training.quarantine.jsonl").read_text().splitlines()]
    assert entry["file"] == str(tar) and "member .png is damaged: CRC32" in entry["reason"]


def test_rerun_keeps_finished_shards_and_redoes_a_missing_one(trained, tmp_path):
    shards, run = trained
    out = tmp_path / "pseudo"
    args = [run, "--shards", shards, "--dataset", "a", "--split", "training", "--out", out, "--shard-size", "1kB"]
    first = _invoke(*args)
    tars = sorted((out / "a-pseudo").glob("training-*.tar"))
    assert len(tars) > 1, first
    again = _invoke(*args)
    assert f"(0 made now, {len(tars)} kept from before), 8 samples" in again
    data = tars[0].read_bytes()
    tars[0].unlink()
    (out / "a-pseudo" / (tars[0].name + ".tmp-0123456789ab")).write_bytes(b"half")  # a killed writer's leftover
    redo = _invoke(*args)
    assert f"(1 made now, {len(tars) - 1} kept from before)" in redo
    assert tars[0].read_bytes() == data  # deterministic
    assert not list((out / "a-pseudo").glob("*.tmp-*"))
    changed = _invoke(*args, "--confidence", "0.9")  # another threshold: every shard is redone
    assert f"({len(tars)} made now, 0 kept from before)" in changed


def test_png_dir_writes_label_pngs_and_the_class_list(trained, tmp_path):
    shards, run = trained
    png = tmp_path / "png"
    _invoke(run, "--shards", shards, "--dataset", "a", "--split", "training", "--png-dir", png)
    pngs = sorted(png.glob("*.png"))
    assert len(pngs) == 8
    assert (png / "classes.txt").read_text().split() == ["class_0", "class_1", "class_2", "class_3"]
    assert json.loads((png / "labelling.json").read_text())["ignore"] == 255
    assert np.asarray(Image.open(pngs[0])).shape == (40, 40)
    again = _invoke(run, "--shards", shards, "--dataset", "a", "--split", "training", "--png-dir", png)
    assert "0 label PNGs written, 8 kept" in again
    result = CliRunner().invoke(app, ["pseudo-label", str(run), "--shards", str(shards), "--dataset", "a",
                                      "--split", "training", "--png-dir", str(png), "--confidence", "0.9"])
    assert result.exit_code == 1 and "another run, label space or threshold" in result.output


def test_images_under_a_dataset_root_in_a_known_layout(trained, tmp_path):
    """NYU-Depth v2's layout (images/, labels40/, train.txt), read through its taxonomy's reader."""
    _, run = trained
    root = tmp_path / "nyu"
    (root / "images").mkdir(parents=True)
    (root / "labels40").mkdir()
    rng = np.random.default_rng(0)
    for i in (1, 2, 3):
        Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(root / "images" / f"{i:04d}.png")
        Image.fromarray(np.ones((30, 50), dtype=np.uint8)).save(root / "labels40" / f"{i:04d}.png")
    (root / "train.txt").write_text("0001\n0003\n")
    png = tmp_path / "png"
    _invoke(run, "--root", root, "--dataset", "nyudv2-40", "--split", "train", "--png-dir", png)
    assert sorted(p.name for p in png.glob("*.png")) == ["0001.png", "0003.png"]
    assert np.asarray(Image.open(png / "0001.png")).shape == (30, 50)


def test_clear_errors(trained, tmp_path):
    shards, run = trained
    cases = [
        (["--dataset", "a", "--out", tmp_path], "exactly one of --shards or --root"),
        (["--shards", shards, "--dataset", "a", "--split", "nope", "--out", tmp_path], "no shards match"),
        (["--shards", shards, "--dataset", "a", "--split", "training", "--out", tmp_path, "--taxonomy", "camvid"],
         "did not train on 'camvid'; give --table"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, ["pseudo-label", str(run), *map(str, args)])
        assert result.exit_code == 1 and message in result.output, result.output


def test_segment_without_dataset_or_label_uses_the_runs_own_space(trained, tmp_path):
    shards, run = trained
    sample = next(iter(_samples(sorted((shards / "a").glob("training-*.tar"))).values()))
    (tmp_path / "x.png").write_bytes(sample.image)
    result = CliRunner().invoke(app, ["segment", str(run), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    labels = np.asarray(Image.open(tmp_path / "o" / "x.label.png"))
    gt = np.asarray(Image.open(io.BytesIO(sample.label_png)))
    assert set(np.unique(labels)) <= {0, 1, 2, 3}  # columns of the run's label space
    assert (labels == gt).mean() > 0.8 and "class_" in result.output
