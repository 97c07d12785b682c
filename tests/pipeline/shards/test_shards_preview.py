"""`ssiw shards preview`: the page's content, box drawing, and a real headless Chromium showing its images."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.demo.corpus import CorpusSize, write_corpus
from pipeline.shards import preview as pv
from pipeline.shards.read import first_samples

WINDOW = (1280, 1600)
DATA_URI = re.compile(r"src='data:image/jpeg;base64,([A-Za-z0-9+/=]+)'")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The demo corpus's ADE-style (dense) and Objects365-style (box) sets, one ADE image truncated."""
    out = tmp_path_factory.mktemp("preview")
    roots = write_corpus(out, CorpusSize(train=6, val=2, image_size=96), seed=5)
    broken = sorted((roots["demo-ade"] / "images" / "training").glob("*.jpg"))[1]
    broken.write_bytes(broken.read_bytes()[:300])
    shards = out / "shards"
    for dataset in ("demo-ade", "demo-objects365"):
        result = invoke("convert", dataset, "--root", roots[dataset], "--out", shards,
                        "--taxonomies", out / "taxonomies", "--no-ray", "--max-quarantined", "0.5")  # 1 of 6 broken
        assert result.exit_code == 0, result.output
    return out, shards, broken


@pytest.fixture(scope="module")
def page(converted):
    out, shards, _ = converted
    html = out / "preview.html"
    result = invoke("shards", "preview", "--out", shards, "--taxonomies", out / "taxonomies",
                    "--cache", out / "no-cache", "--html", html, "--n", "6")
    assert result.exit_code == 0, result.output
    assert "2 dataset(s), 12 samples" in result.output
    return html


def _section(text: str, dataset: str) -> str:
    start = text.index(f"<section id='{dataset}'>")
    return text[start:text.index("</section>", start)]


def test_page_is_self_contained_with_grid_legend_histogram_and_quarantine(page, converted):
    _, _, broken = converted
    text = page.read_text()
    # Nothing is fetched from elsewhere: every src is an inline data: URI.
    assert all(src.startswith("data:") for src in re.findall(r"src='([^']*)'", text))
    ade, boxes = _section(text, "demo-ade"), _section(text, "demo-objects365")
    for section, sentence in ((ade, "An image of sky. The sky is"), (boxes, "An image of person. A person is")):
        assert len(DATA_URI.findall(section)) == 6
        assert "data:image/png;base64," in section  # the class histogram
        assert sentence in section  # legend: display name and label sentence
    # Both splits show up: the six samples are shared between training and validation.
    assert "training/ADE_train_" in ade and "validation/ADE_val_" in ade
    assert "dense supervision; 7 samples" in ade and "box supervision" in boxes
    # The truncated image is listed with its file and reason; the box set has none.
    assert "Quarantined: 1" in ade and broken.name in ade and "truncated" in ade
    assert "Quarantined" not in boxes
    for uri in DATA_URI.findall(ade):
        with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
            assert im.format == "JPEG" and im.width == pv.THUMB_WIDTH


def test_only_named_datasets_and_clear_error_for_unknown(converted, tmp_path):
    out, shards, _ = converted
    html = tmp_path / "one.html"
    result = invoke("shards", "preview", "demo-objects365", "--out", shards, "--taxonomies", out / "taxonomies",
                    "--html", html, "--n", "3")
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert "<section id='demo-objects365'>" in text and "demo-ade" not in text
    assert len(DATA_URI.findall(text)) == 3
    result = CliRunner().invoke(app, ["shards", "preview", "nope", "--out", str(shards), "--html", str(html)])
    assert result.exit_code == 1 and "no shards for nope" in result.output


def test_boxes_are_outlined_in_their_class_colour(converted):
    _, shards, _ = converted
    tar = min((shards / "demo-objects365").glob("train-*.tar"))
    skipped = []
    members = next(iter(first_samples(str(tar), {_first_key(tar)}, skipped.append).values()))
    assert skipped == []
    record = json.loads(members["json"])
    assert members["__key__"] == _first_key(tar)
    assert record["boxes"], "the demo's box set has boxes"
    colours = pv.palette(8)
    drawn, _ = pv.draw_sample(members, colours, width=record["width"])  # scale 1: box pixels exact
    plain, _ = pv.draw_sample({**members, "json": json.dumps({**record, "boxes": []}).encode()}, colours,
                              width=record["width"])
    a = np.asarray(Image.open(io.BytesIO(drawn))).astype(int)
    b = np.asarray(Image.open(io.BytesIO(plain))).astype(int)
    x0, y0, x1, _, c = record["boxes"][0]
    edge = a[int(y0), int(x0) + 1:int(x1) - 1]  # the box's top edge
    assert np.abs(edge - colours[c]).mean() < 40  # close to the class colour (JPEG blurs it a little)
    changed = np.abs(a - b).sum(axis=2) > 60
    assert changed.any() and changed.mean() < 0.5  # outlines only, not the whole image


def test_a_damaged_sample_is_listed_as_unreadable_not_drawn(converted, tmp_path):
    import tarfile

    out, shards, _ = converted
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    tar = min((copy / "demo-ade").glob("training-*.tar"))
    key = _first_key(tar)
    with tarfile.open(tar) as t:
        image = next(m for m in t.getmembers() if m.name.startswith(f"{key}.") and m.name.endswith((".jpg", ".png")))
    data = bytearray(tar.read_bytes())
    data[image.offset_data + image.size // 2] ^= 0x10  # one bit of the image's bytes
    tar.write_bytes(bytes(data))
    html = tmp_path / "damaged.html"
    result = invoke("shards", "preview", "demo-ade", "--out", copy, "--taxonomies", out / "taxonomies",
                    "--cache", out / "no-cache", "--html", html, "--n", "6")
    assert result.exit_code == 0, result.output
    section = _section(html.read_text(), "demo-ade")
    assert "Unreadable in the shards: 1" in section and f"<td>{key}</td>" in section
    assert f"member .{image.name.split('.', 1)[1]} is damaged: CRC32" in section
    assert len(DATA_URI.findall(section)) == 5 and f"/{key} (" not in section  # the other five are drawn


def _first_key(tar: Path) -> str:
    import tarfile

    with tarfile.open(tar) as t:
        return t.getnames()[0].split(".")[0]


def _chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (.ci/run does this)")
    return found


def _chromium_args(profile: Path) -> list[str]:
    return [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"]


def _screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    subprocess.run([*_chromium_args(profile), f"--screenshot={png}", html.as_uri()], check=True,
                   capture_output=True, timeout=120)
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB")).astype(np.float32)


def _image_rects(html: Path, profile: Path) -> list[tuple[int, int, int, int]]:
    """Where Chromium lays out the grid's images: a copy of the page records them in the DOM on load."""
    probe = html.with_name("probe.html")
    script = ("<script>window.addEventListener('load',()=>{document.body.setAttribute('data-rects',"
              "JSON.stringify([...document.querySelectorAll('figure img')].map(i=>{const r=i.getBoundingClientRect();"
              "return [r.x,r.y,r.width,r.height]})))});</script>")
    probe.write_text(html.read_text().replace("</body>", script + "</body>"))
    dom = subprocess.run([*_chromium_args(profile), "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    rects = json.loads(re.search(r'data-rects="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    return [tuple(round(v) for v in r) for r in rects]


def test_chromium_renders_the_sample_images(page, tmp_path):
    rects = _image_rects(page, tmp_path / "profile")
    assert len(rects) == 12
    shot = _screenshot(page, tmp_path / "page.png", tmp_path / "profile")
    blank_html = tmp_path / "blank.html"
    blank_html.write_text("<!DOCTYPE html><html><body style='background:#fafafa'></body></html>")
    blank = _screenshot(blank_html, tmp_path / "blank.png", tmp_path / "profile")
    thumbs = DATA_URI.findall(page.read_text())
    visible = [(r, t) for r, t in zip(rects, thumbs) if r[1] + r[3] <= WINDOW[1] and r[2] > 20 and r[3] > 20]
    assert len(visible) >= 6, f"the first dataset's grid should be on screen: {rects}"
    for (x, y, w, h), uri in visible:
        region = shot[y + 2:y + h - 2, x + 2:x + w - 2]
        empty = blank[y + 2:y + h - 2, x + 2:x + w - 2]
        with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
            expected = np.asarray(im.convert("RGB").resize((w, h), Image.BILINEAR)).astype(np.float32)[2:-2, 2:-2]
        # The screenshot shows this very thumbnail there, and a blank page shows nothing like it.
        assert region.std() > 20 and empty.std() < 1
        assert np.abs(region - expected).mean() < 12
        assert np.abs(empty - expected).mean() > 40
