"""corpus.html, loaded in a real headless Chromium: the corpus table and every class histogram show,
nothing on the page fails, and each dataset's preview link leads to its preview page (#22)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from pipeline.corpus.summary import read_summary

# Recorded before the page's own content runs: any script or resource error on the page.
ERRORS_PROBE = ("<script>window.__errors=[];window.addEventListener('error',e=>window.__errors.push("
                "String(e.message||(e.target&&(e.target.src||e.target.href))||'error')),true);</script>")
LOAD_PROBE = ("<script>window.addEventListener('load',()=>{const rows=[...document.querySelectorAll('#corpus tr')]"
              ".map(r=>[...r.cells].map(c=>c.textContent.trim()));const hist=[...document.querySelectorAll('img.hist')]"
              ".map(i=>[i.alt,i.complete,i.naturalWidth,i.getBoundingClientRect().width]);"
              "document.body.setAttribute('data-probe',JSON.stringify({rows,hist,errors:window.__errors}))});</script>")


def _chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (.ci/run does this)")
    return found


def _probe(html: Path, profile: Path) -> dict:
    """Load a copy of the page with the probes in it; what Chromium saw, read back from the dumped DOM."""
    text = html.read_text()
    probe = html.with_name("probe.html")
    probe.write_text(text.replace("<head>", "<head>" + ERRORS_PROBE, 1).replace("</body>", LOAD_PROBE + "</body>"))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                          "--window-size=1280,1600", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the page's load event never ran"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.hrefs.append(attrs["href"])
        if tag in ("img", "script", "link"):
            self.srcs.append(attrs.get("src") or attrs.get("href") or "")


def test_chromium_shows_the_corpus_table_and_every_histogram(built, tmp_path):
    _, out, _ = built
    report = tmp_path / "corpus.html"  # a copy: the probe page is written beside it
    shutil.copy(out / "corpus.html", report)
    seen = _probe(report, tmp_path / "profile")
    assert seen["errors"] == []
    header, *rows, total = seen["rows"]
    assert header == ["dataset", "supervision", "splits", "samples", "quarantined", "shards", "bytes"]
    summary = read_summary(out)
    assert [r[0] for r in rows] == list(summary.datasets)
    samples = {name: sum(s.samples for s in d.splits.values()) for name, d in summary.datasets.items()}
    assert [int(r[3]) for r in rows] == list(samples.values())
    assert total[0] == "all" and int(total[3]) == sum(samples.values())
    assert [h[0] for h in seen["hist"]] == [f"class histogram of {name}" for name in summary.datasets]
    for _, complete, natural_width, shown_width in seen["hist"]:
        assert complete and natural_width > 100 and shown_width > 100  # decoded and laid out


def test_the_report_is_self_contained_and_links_each_preview(built):
    _, out, _ = built
    page = _Links()
    page.feed((out / "corpus.html").read_text())
    assert page.srcs and all(src.startswith("data:image/png;base64,") for src in page.srcs)
    for src in page.srcs:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.width > 100
    previews = [h for h in page.hrefs if not h.startswith("#")]
    summary = read_summary(out)
    assert previews == [d.preview for d in summary.datasets.values()]
    for link in previews:
        text = (out / link).read_text()
        assert "data:image/jpeg;base64," in text  # samples drawn on the preview page
