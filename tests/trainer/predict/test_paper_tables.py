"""`ssiw eval-tables`: every zero-shot set of Tables 3 and 4 that is present is scored, absent ones are
listed, and the paper's published numbers stand beside ours (tables.md and tables.json)."""

import json

import pytest
from support.every_taxonomy import BUILDERS
from support.layout import shipped
from typer.testing import CliRunner

from pipeline.cli import app
from tests.support.synthetic import SyntheticSpec, tiny_table, write_synthetic_dataset, write_tiny_table
from trainer.config import TrainConfig
from trainer.predict.evaluate import evaluate_checkpoint, samples_from_root, samples_from_shards
from trainer.predict.paper_tables import PAPER_TABLE3, PAPER_TABLE4, TABLE3_SETS, parse_stand_ins
from trainer.train import run_training

SIZES = {"a": 4, "b": 4, "camvid": 11}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run on two synthetic datasets, their shards, a validation split of 'a', and a table that
    also embeds CamVid's 11 classes (zero-shot for this run)."""
    root = tmp_path_factory.mktemp("tables")
    shards = root / "shards"
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=6, size=(40, 40)))
    write_synthetic_dataset(shards, SyntheticSpec("b", samples=6, size=(40, 40), seed=1))
    write_synthetic_dataset(shards, SyntheticSpec("a", samples=3, size=(40, 40), seed=9, split="validation", shards=1))
    table = tiny_table(SIZES)
    cfg = TrainConfig(out_dir=root / "runs", shards=str(shards), datasets=[{"name": "a"}, {"name": "b"}],
                      model="tiny", short_edge=40, crop=(32, 32), batch_size=2, steps=3, epoch_samples=6,
                      workers=0, checkpoint_every=3, shuffle_buffer=4)
    run_training(cfg, table=table, progress=False)
    return root, shards, cfg.run_dir, write_tiny_table(root / "table.parquet", table)


def test_the_published_numbers_are_the_papers():
    assert [s.column for s in TABLE3_SETS] == ["CamVid", "KITTI", "VOC", "Pascal Context", "ScanNet", "WildDash1",
                                               "WildDash2"]
    assert PAPER_TABLE3["Ours (Segformer-B5, HD+OI+OB)"] == (83.7, 68.9, 81.1, 54.2, 55.3, 69.7, 37.9, 64.4)
    assert PAPER_TABLE3["Mseg (HRNet-W48, HD)"][-1] == 58.2
    assert PAPER_TABLE4["Ours (Sentence)"] == (23.6, 51.6, 25.8, 17.8, 36.1, 31.0)
    for row in PAPER_TABLE3.values():  # the paper's Mean is the mean of its seven sets (Mseg's 58.29 printed 58.2)
        assert sum(row[:7]) / 7 == pytest.approx(row[7], abs=0.1)
    assert [s.multi_scale for s in TABLE3_SETS] == [False, True, True, True, False, True, True]  # Table 3's marks


def test_tables_score_the_sets_present_and_list_the_absent(trained, tmp_path):
    _, shards, run, table = trained
    data_root = tmp_path / "data"
    BUILDERS["png_folder"](shipped("camvid"), data_root / "camvid", "test", 0)  # CamVid in its own layout
    out = tmp_path / "tables"
    res = CliRunner().invoke(app, [
        "eval-tables", str(run), "--table", str(table), "--shards", str(shards), "--data-root", str(data_root),
        "--stand-in", "KITTI=a:validation", "--stand-in", "youtube-vis=a:validation", "--multi-scales", "32,40",
        "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "tables.json").read_text())
    rows = {r["set"]: r for r in report["table3"]["rows"]}
    assert rows["CamVid"]["present"] and rows["CamVid"]["dataset"] == "camvid" and not rows["CamVid"]["stand_in"]
    assert rows["KITTI"]["present"] and rows["KITTI"]["stand_in"] and rows["KITTI"]["scales"] == [32, 40]
    assert {k for k, r in rows.items() if not r["present"]} == {"VOC", "Pascal Context", "ScanNet", "WildDash1",
                                                                 "WildDash2"}
    assert "absent: VOC" in res.output and "pascal-voc" in report["absent"]["VOC"]

    # Ours is what `ssiw eval` measures: CamVid single-scale (Table 3's dagger), KITTI's stand-in multi-scale.
    camvid = evaluate_checkpoint(run, "camvid", samples_from_root(shipped("camvid"), data_root / "camvid", "test", None),
                                 table=_load(table), multi_scales=())
    kitti = evaluate_checkpoint(run, "a", samples_from_shards(shards, "a", "validation", None), table=_load(table),
                                multi_scales=(32, 40))
    assert rows["CamVid"]["ours"] == round(100 * camvid["single_scale"]["miou"], 1)
    assert rows["KITTI"]["ours"] == round(100 * kitti["multi_scale"]["miou"], 1)
    assert (rows["CamVid"]["paper"], rows["KITTI"]["paper"]) == (83.7, 68.9)
    mean = report["table3"]["mean"]
    assert mean["sets"] == 2 and mean["paper_same_sets"] == round((83.7 + 68.9) / 2, 1)
    assert mean["ours"] == round((rows["CamVid"]["ours"] + rows["KITTI"]["ours"]) / 2, 1)

    labels = report["table4"]["rows"]
    assert [r["label"] for r in labels] == ["lizard", "shark", "frog", "deer", "duck"]
    assert [r["paper"] for r in labels] == [23.6, 51.6, 25.8, 17.8, 36.1]
    assert [r["present"] for r in labels] == [True] * 4 + [False]  # the stand-in 'a' has four classes

    text = (out / "tables.md").read_text()
    assert "| CamVid | ss | camvid/test | 3 |" in text and "| 83.7 |" in text
    assert "| KITTI | ms | a/validation (stand-in) |" in text
    assert "| VOC | ms | absent |" in text and "Ours (Segformer-B5, HD+OI+OB)" in text


def test_no_data_at_all_is_listed_not_failed(trained, tmp_path):
    _, _, run, table = trained
    res = CliRunner().invoke(app, ["eval-tables", str(run), "--table", str(table), "--shards", str(tmp_path),
                                   "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "t" / "tables.json").read_text())
    assert len(report["absent"]) == 8 and report["table3"]["mean"]["ours"] is None


def test_bad_stand_in_and_row_are_named():
    with pytest.raises(ValueError, match="--stand-in 'Cityscapes=a'"):
        parse_stand_ins(["Cityscapes=a"])
    assert parse_stand_ins(["camvid=demo-heldout:val", "WildDash2=x"]) == {"CamVid": ("demo-heldout", "val"),
                                                                          "WildDash2": ("x", None)}


def _load(path):
    from pipeline.embed.table import load_table

    return load_table(path)


def test_without_multi_scales_an_ms_set_is_scored_single_scale_and_marked(trained, tmp_path):
    _, shards, run, table = trained
    res = CliRunner().invoke(app, ["eval-tables", str(run), "--table", str(table), "--shards", str(shards),
                                   "--stand-in", "KITTI=a:validation", "--multi-scales", "", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    kitti = json.loads((tmp_path / "tables.json").read_text())["table3"]["rows"][1]
    assert kitti["set"] == "KITTI" and kitti["test"] == "ss" and kitti["paper_test"] == "ms"
    assert "| KITTI | ss (paper: ms) | a/validation (stand-in) |" in (tmp_path / "tables.md").read_text()
