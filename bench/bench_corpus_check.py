"""How long `ssiw corpus check` takes on the two big downloads, so the docs can say it before anyone waits.

Objects365-like: 200,000 empty JPEGs (touched, not written) in train/patch0..patch50 beside an index file,
checked against a release of 51 parts: the split's folder is walked with os.scandir and every image
file counted, and each patch folder is looked at. OpenImages-like: 200,000 empty mask PNGs in one
train-masks/ folder with the 16 glob parts of the mask archives (train-masks-0..f.zip), one of them
absent, so the listing cannot stop early: the worst case, one full pass. Both time `check_split` (what
grows with the files); loading the taxonomies is a fixed cost, timed apart. Full-size figures are the
measured rate scaled to 1,742,289 Objects365 train images and 2,686,666 OpenImages train masks.

The files were just created, so their directory entries are in the page cache: a warm-cache figure.
A cold local disk or a network filesystem adds its metadata latency per directory block read.

`python -m bench corpus_check`; `make bench` runs every bench_*.py.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

FILES = 200_000
PATCHES = 51
OBJECTS365_TRAIN = 1_742_289  # taxonomies/corpora/ssiw-paper.yaml
OPENIMAGES_TRAIN_MASKS = 2_686_666  # Open Images V6 facts and figures, Table 3


def _touch_many(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.close(os.open(folder / name, os.O_CREAT | os.O_WRONLY, 0o644))


def objects365_like(root: Path) -> None:
    per_patch = -(-FILES // PATCHES)
    for patch in range(PATCHES):
        first = patch * per_patch
        _touch_many(root / "train" / f"patch{patch}",
                    (f"objects365_v1_{n:08d}.jpg" for n in range(first, min(first + per_patch, FILES))))
    _touch_many(root / "annotations", ["zhiyuan_objv2_train.json"])


def openimages_like(root: Path) -> None:
    """Mask names as the release's: <16-hex ImageID>_<MID>_<BoxID>.png; no ImageID starts with 'f'."""
    hexdigits = "0123456789abcde"
    _touch_many(root / "train-masks",
                (f"{hexdigits[n % 15]}{n:015x}_m0k4j_{n % 997:08x}.png" for n in range(FILES)))
    (root / "train").mkdir()


def _entry(taxset, name: str, root: Path, release: dict):
    from pipeline.corpus.recipe import CorpusRecipe
    from pipeline.corpus.resolve import resolve

    recipe = CorpusRecipe.model_validate({"name": "bench", "out": str(root / "shards"), "datasets": [
        {"name": name, "root": str(root), "splits": ["train"], "release": release}]})
    [ds] = resolve(recipe, taxset)
    return ds


def _timed_check(ds) -> tuple[float, object]:
    from pipeline.corpus.check import check_split

    start = time.perf_counter()
    report = check_split(ds, "train")
    return time.perf_counter() - start, report


def run() -> list[dict]:
    from pipeline.taxonomy.load import load_taxonomy_set

    start = time.perf_counter()
    taxset = load_taxonomy_set()
    load_s = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        o365 = Path(tmp) / "objects365"
        objects365_like(o365)
        ds = _entry(taxset, "objects365-v2", o365, {
            "source": "bench", "images": {"train": FILES}, "parts": {"train": ["train/patch{0..50}"]}})
        seconds, report = _timed_check(ds)
        assert report.found == FILES and report.status == "ok", report
        rows.append(_row("Objects365-like: train/patch0..50, counted, 51 parts", seconds, OBJECTS365_TRAIN,
                         "Objects365 v2 train", load_s))

        oi = Path(tmp) / "openimages"
        openimages_like(oi)
        ds = _entry(taxset, "openimages-v6-seg", oi, {
            "source": "bench", "images": {"train": 1}, "parts": {"train": ["train-masks/{{0..9},{a..f}}*.png"]}})
        seconds, report = _timed_check(ds)
        assert report.missing_parts == ("train-masks/f*.png",), report
        rows.append(_row("OpenImages-like: one mask folder, 16 glob parts, one absent (full pass)", seconds,
                         OPENIMAGES_TRAIN_MASKS, "OpenImages V6 train masks", load_s))
    return rows


def _row(case: str, seconds: float, full: int, full_name: str, load_s: float) -> dict:
    rate = FILES / seconds
    return {"case": case, "files": FILES, "check s": round(seconds, 3), "files/s": round(rate),
            "at full size": f"{full_name}, {full:,} files: {full / rate:.1f} s",
            "taxonomies load s (once)": round(load_s, 2)}
