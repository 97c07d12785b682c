"""`ssiw corpus build`: corpus.json from what was converted, resumable as a whole (a second build converts
and embeds nothing, an edited dataset entry redoes that dataset alone, a killed build picks up where it
stopped), one progress bar over the whole corpus, and failures that name the dataset and split (#22)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from support.corpus_recipes import file_stamps, write_recipe
from typer.testing import CliRunner

import pipeline
from pipeline.cli import app
from pipeline.convert import fingerprint
from pipeline.corpus.build import BuildSettings, build_corpus, code_version, reason_kind
from pipeline.corpus.recipe import load_recipe, recipe_hash
from pipeline.corpus.summary import SUMMARY_FILE, read_summary
from pipeline.demo.corpus import CorpusSize, write_corpus

REPO = Path(__file__).resolve().parents[3]
NO_RAY = BuildSettings(use_ray=False, progress=False)


def build(recipe: Path, settings: BuildSettings = NO_RAY):
    return build_corpus(load_recipe(recipe), recipe, settings, say=lambda line: None)


def cli(*args):
    return CliRunner().invoke(app, ["corpus", "build", *map(str, args)], catch_exceptions=False)


def test_corpus_json_says_what_each_split_holds(built):
    recipe, out, _ = built
    summary = read_summary(out)
    assert set(summary.datasets) == {"demo-ade", "demo-openimages", "demo-objects365"}
    assert list(summary.datasets["demo-objects365"].splits) == ["train"]  # the recipe's splits, no more
    for name, d in summary.datasets.items():
        for split, s in d.splits.items():
            manifest = pl.read_parquet(out / name / f"{split}.manifest.parquet")
            tars = sorted((out / name).glob(f"{split}-*.tar"))
            assert (s.samples, s.shards, s.bytes) == (manifest.height, len(tars), sum(t.stat().st_size for t in tars))
            seen = {c for classes in manifest["classes_present"].to_list() for c in classes}
            assert s.labels_seen == len(seen) and 0 < s.labels_seen <= d.classes
            assert s.quarantined == {}
        assert (out / d.preview).is_file() and d.subset is None
    assert summary.datasets["demo-objects365"].supervision == "box"
    assert summary.recipe_hash == recipe_hash(load_recipe(recipe))
    assert Path(summary.recipe) == recipe.resolve() and Path(summary.shards) == out.resolve()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in summary.tables.values())
    assert summary.code_version == code_version()


def test_the_code_version_names_the_commit_in_a_checkout():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    version = code_version()
    assert re.fullmatch(rf"{re.escape(pipeline.__version__)}\+g([0-9a-f]{{12}})(\.dirty)?", version)
    assert head.startswith(version.split("+g")[1][:12])


def test_a_second_build_converts_and_embeds_nothing(demo_data, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yaml", demo_data, tmp_path / "shards", tmp_path / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-coco"}])
    first = build(recipe)
    assert first.embedded == {"sentence": True}
    tars, parts = file_stamps(tmp_path / "shards"), file_stamps(tmp_path / "shards", "*.json")
    second = build(recipe)
    assert second.embedded == {"sentence": False}
    assert [(r.dataset, r.split, r.kept, r.shards, r.written) for r in second.results] == \
        [(r.dataset, r.split, r.shards, r.shards, r.written) for r in first.results]
    assert file_stamps(tmp_path / "shards") == tars and len(tars) == 4
    assert {k: v for k, v in file_stamps(tmp_path / "shards", "*.json").items() if "/.parts/" in k} == \
        {k: v for k, v in parts.items() if "/.parts/" in k}
    assert (tmp_path / "shards" / SUMMARY_FILE).is_file()


def test_an_edited_dataset_entry_redoes_that_dataset_alone(demo_data, tmp_path):
    entries = [{"name": "demo-ade"}, {"name": "demo-openimages"}, {"name": "demo-objects365"}]
    recipe = write_recipe(tmp_path / "recipe.yaml", demo_data, tmp_path / "shards", tmp_path / "cache", entries)
    build(recipe)
    before = file_stamps(tmp_path / "shards")
    entries[1] = {"name": "demo-openimages", "max_samples": 4, "seed": 1}
    write_recipe(recipe, demo_data, tmp_path / "shards", tmp_path / "cache", entries)
    outcome = build(recipe)
    after = file_stamps(tmp_path / "shards")
    untouched = {k: v for k, v in before.items() if not k.startswith("demo-openimages/")}
    assert untouched and {k: after[k] for k in untouched} == untouched
    assert all(after[k] != v for k, v in before.items() if k.startswith("demo-openimages/"))
    for r in outcome.results:
        if r.dataset == "demo-openimages":  # validation has 3 samples: all kept, but under a subset now
            assert r.kept == 0 and set(r.redone) == {fingerprint.SUBSET_CHANGED}
            assert r.written == {"train": 4, "validation": 3}[r.split]
        else:
            assert r.kept == r.shards and r.redone == {}
    openimages = read_summary(tmp_path / "shards").datasets["demo-openimages"]
    assert openimages.subset == "max_samples=4 seed=1"
    assert {s: v.samples for s, v in openimages.splits.items()} == {"train": 4, "validation": 3}


def test_one_progress_bar_counts_every_sample_of_the_corpus(demo_data, tmp_path, capfd):
    recipe = write_recipe(tmp_path / "recipe.yaml", demo_data, tmp_path / "shards", tmp_path / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-heldout"}])
    build(recipe, BuildSettings(use_ray=False, progress=True))
    err = capfd.readouterr().err
    counts = re.findall(r"\| *(\d+)/(\d+) \[[^\]]*img/s", err)  # the convert bars (unit: images)
    assert counts and {total for _, total in counts} == {"14"}  # 8 + 3 (demo-ade) + 3 (demo-heldout)
    assert counts[-1] == ("14", "14")
    for where in ("demo-ade/training", "demo-ade/validation", "demo-heldout/val"):
        assert f"] {where}:" in err  # the split being converted is named in the bar


def test_too_many_quarantined_names_the_split_writes_no_corpus_json_and_a_fix_resumes(demo_data, tmp_path):
    data = tmp_path / "demo"
    shutil.copytree(demo_data, data)
    for image in sorted((data / "data" / "demo-ade" / "images" / "training").glob("*.jpg"))[:3]:
        image.write_bytes(image.read_bytes()[:200])  # cut short: 3 of 8 quarantined
    recipe = write_recipe(tmp_path / "recipe.yaml", data, tmp_path / "shards", tmp_path / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-heldout"}])
    result = cli(recipe, "--no-ray")
    assert result.exit_code == 1
    assert "demo-ade/training quarantined 3 of 8 samples" in result.output
    assert "convert.max_quarantined" in result.output and "run the same command again" in result.output
    assert not (tmp_path / "shards" / SUMMARY_FILE).exists()
    report = (tmp_path / "shards" / "corpus.html").read_text()
    assert "corrupt or truncated image" in report
    before = file_stamps(tmp_path / "shards")
    write_recipe(recipe, data, tmp_path / "shards", tmp_path / "cache",
                 [{"name": "demo-ade"}, {"name": "demo-heldout"}], convert={"max_quarantined": 0.5})
    outcome = build(recipe)  # the same shards are fine now: nothing is converted again
    assert all(r.kept == r.shards for r in outcome.results) and file_stamps(tmp_path / "shards") == before
    ade = read_summary(tmp_path / "shards").datasets["demo-ade"].splits["training"]
    assert ade.samples == 5 and ade.quarantined == {"corrupt or truncated image": 3}
    write_recipe(recipe, data, tmp_path / "shards", tmp_path / "cache",
                 [{"name": "demo-ade"}, {"name": "demo-heldout"}], convert={"max_quarantined": 0.2})
    assert cli(recipe, "--no-ray").exit_code == 1  # nothing to convert, but the check fails again:
    assert not (tmp_path / "shards" / SUMMARY_FILE).exists()  # the last build's corpus.json goes


def test_a_missing_root_is_named_before_anything_is_written(demo_data, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yaml", demo_data, tmp_path / "shards", tmp_path / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-coco", "root": "elsewhere"},
                           {"name": "demo-heldout", "splits": ["val"], "root": str(tmp_path / "gone")}])
    result = cli(recipe, "--no-ray")
    assert result.exit_code == 1
    assert "demo-coco: dataset root" in result.output and "demo-heldout: dataset root" in result.output
    assert "--data-root" in result.output
    assert not (tmp_path / "shards").exists() and not (tmp_path / "cache").exists()


def test_the_command_line_locations_override_the_recipe(demo_data, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yaml", tmp_path / "not-here", tmp_path / "wrong-out", tmp_path / "wrong-cache",
                          [{"name": "demo-heldout"}])
    result = cli(recipe, "--no-ray", "--data-root", demo_data / "data", "--out", tmp_path / "shards",
                 "--cache", tmp_path / "cache", "--taxonomies", demo_data / "taxonomies")
    assert result.exit_code == 0, result.output
    summary = read_summary(tmp_path / "shards")
    assert summary.cache == str((tmp_path / "cache").resolve())
    assert summary.taxonomies == [str((demo_data / "taxonomies").resolve())]
    assert not (tmp_path / "wrong-out").exists() and not (tmp_path / "wrong-cache").exists()


def test_quarantine_reasons_group_by_kind():
    assert reason_kind({"key": "a", "reason": "corrupt or truncated image: image file is truncated"}) == \
        "corrupt or truncated image"
    assert reason_kind({"key": "a", "reason": "missing file"}) == "missing file"
    assert reason_kind({"key": "k1", "reason": "k1: MID(s) ['/m/x'] not in taxonomy 'oi'", "unknown": ["/m/x"]}) == \
        "values not in the taxonomy"
    assert reason_kind({"key": "k1", "reason": "line 7: expected one image entry, got 'a b'"}) == \
        "expected one image entry, got 'a b'"


def _finished_tars(out: Path) -> dict[str, tuple[int, int]]:
    """Tars whose part (written after the tar) exists: the shards a run had finished."""
    stamps = file_stamps(out)
    return {k: v for k, v in stamps.items()
            if (out / Path(k).parent / ".parts" / f"{Path(k).stem}.json").is_file()}


def test_a_killed_build_resumes_without_redoing_finished_work(tmp_path):
    data = tmp_path / "demo"
    write_corpus(data, CorpusSize(train=30, val=3, image_size=96), seed=1)
    out = tmp_path / "shards"
    recipe = write_recipe(tmp_path / "recipe.yaml", data, out, tmp_path / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-coco"}, {"name": "demo-openimages"}],
                          convert={"shard_samples": 3})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "corpus", "build", str(recipe), "--no-ray"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (out / "demo-ade" / "validation.manifest.parquet").exists():
            assert proc.poll() is None and time.time() < deadline, "the build ended before demo-ade was converted"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the first dataset done, the second under way
    finally:
        proc.wait()
    assert not (out / SUMMARY_FILE).exists()
    finished = _finished_tars(out)
    assert any(k.startswith("demo-ade/") for k in finished)
    outcome = build(recipe)
    for r in outcome.results:
        if r.dataset == "demo-ade":
            assert r.kept == r.shards
    after = file_stamps(out)
    assert {k: after[k] for k in finished} == finished
    assert read_summary(out).datasets["demo-coco"].splits["train2017"].samples == 30


def test_a_rebuild_with_nothing_to_convert_starts_no_ray(built, tmp_path):
    recipe, out, _ = built
    copy = tmp_path / "shards"
    shutil.copytree(out, copy)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "pipeline", "corpus", "build", str(recipe), "--out", str(copy)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "Ray" not in done.stdout + done.stderr  # neither ours nor one Ray starts by itself on first use
    assert file_stamps(copy) == file_stamps(out)


def test_a_ray_build_writes_the_same_shards(built, demo_data, tmp_path, ray_session):
    _, reference, _ = built
    recipe = write_recipe(tmp_path / "recipe.yaml", demo_data, tmp_path / "shards", tmp_path / "cache",
                          [{"name": "demo-ade"}, {"name": "demo-objects365", "splits": ["train"]}])
    build(recipe, BuildSettings(use_ray=True, progress=False))
    assert ray_session.is_initialized()  # the build joined the session it found and left it running
    tars = sorted(p.relative_to(tmp_path / "shards") for p in (tmp_path / "shards").rglob("*.tar"))
    assert len(tars) == 3
    for tar in tars:
        assert (tmp_path / "shards" / tar).read_bytes() == (reference / tar).read_bytes(), tar
    summary = json.loads((tmp_path / "shards" / SUMMARY_FILE).read_text())
    assert summary["datasets"]["demo-ade"]["splits"]["training"]["samples"] == 8


def test_help_names_what_a_build_does():
    result = cli("--help")
    assert result.exit_code == 0
    for words in ("corpus.json", "corpus.html", "--data-root", "--ray-address", "--no-ray", "re-run"):
        assert words in result.output


def test_a_build_into_object_storage_writes_its_summary_and_report_there(demo_data, tmp_path, s3_bucket):
    import fsspec

    out = f"{s3_bucket}/corpus"
    recipe = write_recipe(tmp_path / "recipe.yaml", demo_data, Path("unused"), tmp_path / "cache",
                          [{"name": "demo-heldout"}, {"name": "demo-objects365", "splits": ["val"]}])
    result = cli(recipe, "--no-ray", "--out", out)
    assert result.exit_code == 0, result.output
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    summary = json.loads(fs.cat_file(f"{out}/{SUMMARY_FILE}"))
    assert summary["shards"] == out
    assert summary["datasets"]["demo-heldout"]["splits"]["val"]["samples"] == 3
    assert fs.exists(f"{out}/corpus.html") and fs.exists(f"{out}/previews/demo-heldout/preview.html")
    assert [p for p in fs.find(out) if ".tmp-" in p] == []
