"""Nothing found on disk is lost without a word: images without labels, names that are not UTF-8,
splits a download lacks, temps left by a kill during the final assembly, and the summary's paths.
Data in the real release layouts (shared/fixtures/real where a sample exists)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.every_taxonomy import BUILDERS
from support.layout import TAXONOMIES, place, shipped
from typer.testing import CliRunner

from pipeline.cli import app  # the real command, with its one handler of user-facing errors
from pipeline.convert import cli
from pipeline.convert.readers import BadSample, get_reader
from pipeline.convert.runner import ConvertError, convert_split
from pipeline.convert.shard import ShardOptions, StrictStop
from pipeline.taxonomy.load import dataset_paths, load_dataset_file


def invoke(*args) -> object:
    return CliRunner().invoke(app, ["convert", *[str(a) for a in args]], catch_exceptions=False)  # the real command


def ade_root(real_fixtures: Path, root: Path, split: str = "validation") -> Path:
    """The three real ADEChallengeData2016 samples, copied into the release layout."""
    tax = shipped("ade20k-150")
    src = real_fixtures / "ade20k-challenge"
    spec = tax.splits[split]
    for image in sorted((src / "images").glob("*.jpg")):
        place(root, spec.images, image.name, src=image)
        place(root, spec.annotations, f"{image.stem}.png", src=src / "annotations" / f"{image.stem}.png")
    return root


def quarantine(out: Path, dataset: str, split: str) -> list[dict]:
    text = (out / dataset / f"{split}.quarantine.jsonl").read_bytes().decode("utf-8")  # must be UTF-8
    return [json.loads(line) for line in text.splitlines()]


# --- an image without its label file -------------------------------------------------------------
def test_ade_image_without_label_is_quarantined_and_strict_stops(real_fixtures, tmp_path):
    tax = shipped("ade20k-150")
    root = ade_root(real_fixtures, tmp_path / "ade")
    (root / "annotations/validation/ADE_val_00000002.png").unlink()
    out = tmp_path / "out"
    result = convert_split(
        tax, get_reader(tax.format), root, "validation", out, shard_bytes=10**9, progress=False
    )
    assert (result.written, result.quarantined) == (2, 1)
    [entry] = quarantine(out, "ade20k-150", "validation")
    assert entry["key"] == "ADE_val_00000002"
    assert entry["file"] == str(root / "images/validation/ADE_val_00000002.jpg")
    assert entry["reason"] == (
        "missing label file (looked for annotations/validation/ADE_val_00000002.png, "
        "pattern 'annotations/validation/*.png')"
    )
    with pytest.raises(StrictStop, match="ADE_val_00000002.jpg: missing label file"):
        convert_split(
            tax,
            get_reader(tax.format),
            root,
            "validation",
            tmp_path / "strict",
            shard_bytes=10**9,
            progress=False,
            options=ShardOptions(strict=True),
        )


def _pairing_yamls() -> list[Path]:
    """Shipped YAMLs whose reader pairs files by their place and have no index list (with an index,
    an unlisted image is not part of the split, and a listed one without label is reported already)."""
    out = []
    for path in dataset_paths(TAXONOMIES):
        tax, _ = load_dataset_file(path)
        if tax.format in {
            "ade20k",
            "cityscapes",
            "bdd100k",
            "mapillary",
            "sunrgbd",
            "idd",
            "png_folder",
        } and not any(s.index for s in tax.splits.values()):
            out.append(path)
    return out


@pytest.mark.parametrize("path", _pairing_yamls(), ids=lambda p: p.stem)
def test_every_pairing_reader_reports_an_image_without_label(path, tmp_path):
    tax, _ = load_dataset_file(path)
    split = next(iter(tax.splits))
    truth = BUILDERS[tax.format](tax, tmp_path, split, 0)
    reader = get_reader(tax.format)
    planned = {i.key: i for i in reader.plan(tax, tmp_path, split)}
    victim = next(k for k in sorted(truth) if planned[k].annotation.endswith(".png"))
    Path(planned[victim].annotation).unlink()
    items = {i.key: i for i in reader.plan(tax, tmp_path, split)}
    assert sorted(items) == sorted(truth)  # the image is still planned, not dropped
    with pytest.raises(BadSample) as info:
        reader.read(tax, items[victim])
    assert info.value.path == str(truth[victim].image)
    assert info.value.reason.startswith("missing label file (looked for ")
    assert repr(tax.splits[split].annotations) in info.value.reason  # the pattern that was searched
    for key in sorted(truth):
        if key != victim:
            assert reader.read(tax, items[key]).key == key


# --- a file name that is not UTF-8 ------------------------------------------------------------------
def test_non_utf8_file_name_is_quarantined_with_its_bytes_named(real_fixtures, tmp_path):
    tax = shipped("ade20k-150")
    root = ade_root(real_fixtures, tmp_path / "ade")
    src = real_fixtures / "ade20k-challenge"
    # A Latin-1 name, as an old archive unpacked on a UTF-8 system leaves it: b"caf\xe9".
    image = os.path.join(os.fsencode(root / "images/validation"), b"caf\xe9.jpg")
    label = os.path.join(os.fsencode(root / "annotations/validation"), b"caf\xe9.png")
    shutil.copyfile(src / "images/ADE_val_00000001.jpg", image)
    shutil.copyfile(src / "annotations/ADE_val_00000001.png", label)
    out = tmp_path / "out"
    result = convert_split(
        tax, get_reader(tax.format), root, "validation", out, shard_bytes=10**9, progress=False
    )
    assert (result.written, result.quarantined) == (3, 2)  # the three real samples; the image and the label
    entries = quarantine(out, "ade20k-150", "validation")
    files = sorted(e["file"] for e in entries)
    assert files == [f"{root}/annotations/validation/caf\\xe9.png", f"{root}/images/validation/caf\\xe9.jpg"]
    for e in entries:
        assert e["key"].startswith("non-utf8-name-") and "not valid UTF-8" in e["reason"]
        assert "rename it" in e["reason"]
    assert len({e["key"] for e in entries}) == 2
    # No record or manifest row claims the file under another name.
    import polars as pl

    keys = pl.read_parquet(out / "ade20k-150/validation.manifest.parquet")["key"].to_list()
    assert sorted(keys) == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]


# --- real release layouts ---------------------------------------------------------------------------
def test_sunrgbd_as_mseg_prepares_it(real_fixtures, tmp_path, shipped_taxonomies):
    """image/<split>/img-NNNNNN.jpg with semseg-label37/<split>/NNNNNNNN.png (mseg-api's lists)."""
    import numpy as np
    from PIL import Image

    tax = shipped("sunrgbd")
    src = real_fixtures / "sunrgbd"
    root = tmp_path / "SUNRGBD"
    (root / "image/test").mkdir(parents=True)
    (root / "semseg-label37/test").mkdir(parents=True)
    shutil.copyfile(src / "image/img-000001.jpg", root / "image/test/img-000001.jpg")
    shutil.copyfile(src / "label37/00000001.png", root / "semseg-label37/test/00000001.png")
    shutil.copyfile(src / "image/img-000001.jpg", root / "image/test/img-000002.jpg")  # no label
    out = tmp_path / "out"
    result = convert_split(tax, get_reader(tax.format), root, "test", out, shard_bytes=10**9, progress=False)
    assert (result.written, result.quarantined) == (1, 1)
    [entry] = quarantine(out, "sunrgbd", "test")
    assert (
        entry["reason"]
        == "missing label file (looked for a file numbered 2 matching 'semseg-label37/test/*.png')"
    )
    import webdataset as wds

    [sample] = list(wds.WebDataset([str(out / "sunrgbd/test-000000.tar")], shardshuffle=False))
    raw = np.asarray(Image.open(src / "label37/00000001.png"))
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(sample["label.png"]))), raw)


def test_sunrgbd_download_without_mseg_remap_is_an_error_naming_the_pattern(real_fixtures, tmp_path):
    """The raw download's label37/ (renamed label38/ by MSeg) holds unshifted ids: never read as-is."""
    tax = shipped("sunrgbd")
    root = tmp_path / "SUNRGBD"
    (root / "image/train").mkdir(parents=True)
    (root / "label38/train").mkdir(parents=True)
    shutil.copyfile(real_fixtures / "sunrgbd/image/img-000001.jpg", root / "image/train/img-000001.jpg")
    with pytest.raises(
        ConvertError, match=r"semseg-label37/train not found .*'semseg-label37/train/\*\.png'"
    ):
        convert_split(
            tax, get_reader(tax.format), root, "train", tmp_path / "out", shard_bytes=10**9, progress=False
        )


def _idd_polygons(width: int, height: int) -> bytes:
    return json.dumps(
        {
            "imgWidth": width,
            "imgHeight": height,
            "objects": [
                {
                    "label": "road",
                    "polygon": [
                        [0, height // 2],
                        [width - 1, height // 2],
                        [width - 1, height - 1],
                        [0, height - 1],
                    ],
                    "deleted": 0,
                    "date": "",
                    "id": 0,
                    "user": "",
                    "verified": 0,
                },
                {
                    "label": "sky",
                    "polygon": [[0, 0], [width - 1, 0], [width - 1, height // 2 - 1], [0, height // 2 - 1]],
                    "deleted": 0,
                    "date": "",
                    "id": 1,
                    "user": "",
                    "verified": 0,
                },
            ],
        }
    ).encode()


def test_idd_part_two_jpg_images_convert_and_a_frame_without_labels_names_both_patterns(tmp_path):
    """idd20kII: leftImg8bit/<split>/<seq>/<frame>_leftImg8bit.jpg beside gtFine/.../_gtFine_polygons.json."""
    from support.generated import jpeg

    tax = shipped("idd")
    root = tmp_path / "idd20kII"
    for seq, frame in (("201", "frame0029"), ("201", "frame0030")):
        img = root / f"leftImg8bit/val/{seq}/{frame}_leftImg8bit.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(jpeg(64, 32, 1))
    poly = root / "gtFine/val/201/frame0029_gtFine_polygons.json"
    poly.parent.mkdir(parents=True)
    poly.write_bytes(_idd_polygons(64, 32))
    out = tmp_path / "out"
    result = convert_split(tax, get_reader(tax.format), root, "val", out, shard_bytes=10**9, progress=False)
    assert (result.written, result.quarantined) == (1, 1)
    [entry] = quarantine(out, "idd", "val")
    assert entry["key"] == "201_frame0030"
    assert entry["file"].endswith("leftImg8bit/val/201/frame0030_leftImg8bit.jpg")
    assert "gtFine/val/201/frame0030_gtFine_labellevel3Ids.png" in entry["reason"]
    assert "gtFine/val/201/frame0030_gtFine_polygons.json" in entry["reason"]
    import numpy as np
    import polars as pl

    row = pl.read_parquet(out / "idd/val.manifest.parquet")
    assert row["image_ext"].to_list() == ["jpg"]
    road, sky = tax.class_names.index("road"), tax.class_names.index("sky")
    assert sorted(row["classes_present"][0].to_list()) == sorted([road, sky])
    assert np.sum(row["class_pixels"][0].to_list()) == 64 * 32


# --- splits a download lacks -----------------------------------------------------------------------
def test_without_split_converts_present_splits_and_lists_absent_ones(real_fixtures, tmp_path):
    root = ade_root(real_fixtures, tmp_path / "ADEChallengeData2016")  # validation only
    out = tmp_path / "out"
    result = invoke("ade20k-150", "--root", root, "--out", out, "--no-ray")
    assert result.exit_code == 0, result.output
    assert "skipped: training ('images/training/*.jpg')" in result.output
    assert (out / "ade20k-150/validation.manifest.parquet").is_file()
    assert not list((out / "ade20k-150").glob("training*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("ade20k-150", "--root", empty, "--out", out, "--no-ray")
    assert result.exit_code == 1
    assert "none of the taxonomy's splits is under" in result.output
    assert "training: 'images/training/*.jpg'" in result.output and "validation: " in result.output


def test_summary_names_the_real_quarantine_files(real_fixtures, tmp_path):
    root = ade_root(real_fixtures, tmp_path / "ade")
    (root / "annotations/validation/ADE_val_00000003.png").unlink()
    out = tmp_path / "out"
    # 1 of 3 is past the default --max-quarantined: allowed here, where the naming is under test.
    result = invoke("ade20k-150", "--root", root, "--out", out, "--no-ray", "--split", "validation",
                    "--max-quarantined", "0.5")
    assert result.exit_code == 0, result.output
    assert "<dataset>" not in result.output and "<split>" not in result.output
    # The summary table fits 80 columns whole: names are neither cut nor its headers (issue #19).
    row = next(line for line in result.output.splitlines() if line.strip().startswith("ade20k-150 "))
    assert "validation" in row and len(row) <= 80 and "…" not in result.output and "quarantined" in result.output
    assert f"1 quarantined: {out.resolve() / 'ade20k-150' / 'validation.quarantine.jsonl'}" in result.output


# --- temps left by a kill during the final assembly ---------------------------------------------------
ASSEMBLY_TEMPS = (
    "validation.manifest.parquet.tmp-0123456789ab",
    "validation.quarantine.jsonl.tmp-a1b2c3d4e5f6",
)


def test_rerun_removes_assembly_temps_it_owns(real_fixtures, tmp_path):
    tax = shipped("ade20k-150")
    root = ade_root(real_fixtures, tmp_path / "ade")
    out = tmp_path / "out"
    (out / "ade20k-150").mkdir(parents=True)
    for name in ASSEMBLY_TEMPS:
        (out / "ade20k-150" / name).write_bytes(b"half")
    dead_index = out / "index.parquet.tmp-00aa11bb22cc"
    dead_index.write_bytes(b"half")
    hour_ago = time.time() - 2 * 3600
    os.utime(dead_index, (hour_ago, hour_ago))  # the shared index: a temp this old is a dead job's
    fresh_index = out / "index.parquet.tmp-11bb22cc33dd"  # another job may be writing it now
    fresh_index.write_bytes(b"half")
    other = out / "ade20k-150" / "training.manifest.parquet.tmp-ffffffffffff"  # another split's: not ours
    other.write_bytes(b"x")
    convert_split(tax, get_reader(tax.format), root, "validation", out, shard_bytes=10**9, progress=False)
    left = sorted(p.name for p in out.rglob("*.tmp-*"))
    assert left == sorted([fresh_index.name, other.name])


KILL_SCRIPT = """
import os, sys, time
from pathlib import Path
real_replace = os.replace
def slow_replace(src, dst, *a, **k):
    # Hold every assembly temp on disk for a while, so the test can kill the job mid-assembly.
    if any(m in os.fspath(src) for m in sys.argv[4].split(",")):
        print("TEMP", os.fspath(src), flush=True)
        time.sleep(60)
    return real_replace(src, dst, *a, **k)
os.replace = slow_replace
from pipeline.convert.readers import get_reader
from pipeline.convert.runner import convert_split
from pipeline.taxonomy.load import load_dataset_file
tax, _ = load_dataset_file(Path(sys.argv[3]))
convert_split(tax, get_reader(tax.format), Path(sys.argv[1]), "validation", Path(sys.argv[2]),
              shard_bytes=10**9, progress=False)
"""


@pytest.mark.parametrize("marker", [".manifest.parquet.tmp-", ".quarantine.jsonl.tmp-", "index.parquet.tmp-"])
def test_sigkill_during_assembly_then_rerun_removes_the_temps(real_fixtures, tmp_path, marker):
    tax = shipped("ade20k-150")
    root = ade_root(real_fixtures, tmp_path / "ade")
    (root / "annotations/validation/ADE_val_00000001.png").unlink()  # so a quarantine report is written
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(cli.__file__).parents[2]), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(root), str(out), str(TAXONOMIES / "ade20k-150.yaml"), marker],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # blocks until the temp is on disk (or the job ended)
        assert line.startswith("TEMP") and marker in line, line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert [p.name for p in out.rglob("*.tmp-*") if marker in p.name], "the kill left no temp to clean"
    t0 = time.perf_counter()
    result = convert_split(
        tax, get_reader(tax.format), root, "validation", out, shard_bytes=10**9, progress=False
    )
    assert time.perf_counter() - t0 < 120
    assert (result.written, result.quarantined, result.kept) == (2, 1, 1)
    assert len(quarantine(out, "ade20k-150", "validation")) == 1
    left = list(out.rglob("*.tmp-*"))
    if marker != "index.parquet.tmp-":
        assert not left  # the split's own temps go at once
        return
    # The shared index's temp may be another job's write in progress: it goes once an hour old.
    assert [p.name.startswith("index.parquet.tmp-") for p in left] == [True]
    hour_ago = time.time() - 2 * 3600
    os.utime(left[0], (hour_ago, hour_ago))
    convert_split(tax, get_reader(tax.format), root, "validation", out, shard_bytes=10**9, progress=False)
    assert not list(out.rglob("*.tmp-*"))


def test_coco_panoptic_image_without_annotation_entry_is_reported(real_fixtures, tmp_path):
    """The real panoptic_examples.json with one more image listed and no annotation for it."""
    tax = shipped("coco-panoptic-133")
    src = real_fixtures / "coco-panoptic"
    spec = tax.splits["val2017"]
    for image in sorted((src / "images").glob("*.jpg")):
        place(tmp_path, spec.images, image.name, src=image)
        place(
            tmp_path,
            spec.annotations,
            f"{image.stem}.png",
            src=src / "panoptic_examples" / f"{image.stem}.png",
        )
    meta = json.loads((src / "panoptic_examples.json").read_text())
    first = min((src / "images").glob("*.jpg"))
    shutil.copyfile(first, tmp_path / spec.images / "000000999999.jpg")
    meta["images"].append({**meta["images"][0], "id": 999999, "file_name": "000000999999.jpg"})
    (tmp_path / spec.index).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / spec.index).write_text(json.dumps(meta))
    out = tmp_path / "out"
    result = convert_split(
        tax, get_reader(tax.format), tmp_path, "val2017", out, shard_bytes=10**9, progress=False
    )
    assert (result.written, result.quarantined) == (2, 1)
    [entry] = quarantine(out, "coco-panoptic-133", "val2017")
    assert entry["key"] == "000000999999" and entry["file"] == str(tmp_path / spec.index)
    assert entry["reason"] == (
        "missing label file: image id 999999 (000000999999.jpg) has no entry in 'annotations'"
    )
