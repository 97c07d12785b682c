"""`make demo` end to end, at a small size: every step runs through the real `ssiw` commands."""

from __future__ import annotations

import json

from pipeline.demo.corpus import CorpusSize
from pipeline.demo.layout import HELDOUT, Paths
from pipeline.demo.report import heldout_chance
from pipeline.demo.run import Settings, run_demo


def test_demo_runs_every_step_and_beats_chance(tmp_path):
    settings = Settings(tmp_path / "demo", steps=80, size=CorpusSize(train=32, val=12, image_size=96), seed=0)
    report = run_demo(settings)
    p = Paths(settings.out)
    text = report.read_text()
    for figure in ("figures/examples.png", "figures/losses.png", "figures/similarity-sentence.png",
                   "eval/demo/demo-heldout/per_class_iou.png", "shards/corpus.html", "shards/corpus.json"):
        assert (p.out / figure).is_file(), figure
        assert figure in text, figure
    heldout = json.loads((p.eval_dir("demo", HELDOUT) / "results.json").read_text())
    chance, k = heldout_chance(p, HELDOUT, "val")
    assert k == 8 and len(heldout["single_scale"]["per_class"]) == 8
    # Even a short run labels the held-out names well above random guessing.
    assert heldout["single_scale"]["miou"] > 2 * chance
    # eval-tables on the demo's run: the held-out set stands in for CamVid, the paper's number beside it
    tables = json.loads((p.out / "paper-tables" / "tables.json").read_text())
    camvid = tables["table3"]["rows"][0]
    assert camvid["set"] == "CamVid" and camvid["stand_in"] and camvid["paper"] == 83.7
    assert camvid["ours"] == round(100 * heldout["single_scale"]["miou"], 1)
    assert len(tables["absent"]) == 7  # the paper's other six Table 3 sets and YouTube-VIS


def test_each_command_is_shown_as_a_line_that_pastes_back_to_the_same_arguments(capsys):
    import shlex

    from pipeline.demo.run import ssiw

    args = ["eval", "--help", "--multi-scales", "", "--out", "a folder/with space"]
    ssiw(*args)  # --help: exits 0 after printing the help
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("   $ ")]
    assert len(shown) == 1
    assert shlex.split(shown[0].removeprefix("   $ ")) == ["ssiw", *args]
