"""corpus.html: one self-contained page about a built corpus, written beside corpus.json.

A table of every dataset, then per dataset: its splits, a class histogram (the classes with the most
labelled pixels, or box area for box data, from the manifests' per-class counts: pipeline/shards/stats.py),
its quarantine reasons and a link to its preview page (`ssiw shards preview`'s, in previews/). Images
are inline PNG data: URIs, so the page needs nothing but itself and the preview pages beside it.
"""

from __future__ import annotations

import base64
import html
import io

from pipeline import storage
from pipeline.convert.manifest import manifest_path
from pipeline.corpus.summary import CorpusSummary, DatasetSummary

HISTOGRAM_TOP = 15

_STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc} h3{font-size:14px}
.meta{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 8px}
td.n,th.n{text-align:right} th{background:#f0f0f0;text-align:left}
.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
"""


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def histogram_png(per_class, names: list[str], title: str, what: str) -> bytes:
    """Horizontal bars: each of the top classes' share of the dataset's labelled pixels (or box area)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.palette import palette

    colours = palette(max(len(names), 1)) / 255
    index = per_class["class_index"].to_list()
    labels = [names[i] if i < len(names) else str(i) for i in index]
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.24 * max(len(index), 1)))
    try:
        ax.barh(range(len(index)), [100 * v for v in per_class["pixel_share"].to_list()],
                color=[colours[i % len(colours)] for i in index])
        ax.set_yticks(range(len(index)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"% of the {what}")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=90)
        return out.getvalue()
    finally:
        plt.close(fig)


def class_histograms(out_dir: storage.Location, summary: CorpusSummary, taxset) -> dict[str, str]:
    """Dataset -> its class histogram as a data: URI, over all its converted splits."""
    import polars as pl

    from pipeline.shards.stats import class_table

    found = {}
    for name, d in summary.datasets.items():
        splits = [s for s, split in d.splits.items() if split.samples]
        if not splits:
            continue
        manifests = pl.concat([storage.read_parquet(manifest_path(storage.join(out_dir, name), s)) for s in splits])
        per_class = class_table(manifests).sort(["pixels", "class_index"], descending=[True, False])
        if not len(per_class):
            continue
        what = "box area" if d.supervision == "box" else "labelled pixels"
        top = per_class.head(HISTOGRAM_TOP)
        title = f"{name}: top {len(top)} of {len(per_class)} classes seen, by {what}"
        found[name] = _data_uri(histogram_png(top, taxset.datasets[name].class_names, title, what))
    return found


def _row(cells: list, numeric: set[int]) -> str:
    return "<tr>" + "".join(f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>"
                            for i, c in enumerate(cells)) + "</tr>"


def _head(columns: list[str], numeric: set[int]) -> str:
    return "<tr>" + "".join(f"<th class='n'>{c}</th>" if i in numeric else f"<th>{c}</th>"
                            for i, c in enumerate(columns)) + "</tr>"


def _quarantined(d: DatasetSummary) -> int:
    return sum(n for s in d.splits.values() for n in s.quarantined.values())


def corpus_table(summary: CorpusSummary) -> str:
    e = html.escape
    numeric = {3, 4, 5, 6}
    rows = [_head(["dataset", "supervision", "splits", "samples", "quarantined", "shards", "bytes"], numeric)]
    for name, d in summary.datasets.items():
        rows.append(_row([f"<a href='#{e(name)}'>{e(name)}</a>", e(d.supervision), e(", ".join(d.splits)),
                          f"{sum(s.samples for s in d.splits.values()):,}", f"{_quarantined(d):,}",
                          f"{sum(s.shards for s in d.splits.values()):,}",
                          _size(sum(s.bytes for s in d.splits.values()))], numeric))
    total = [s for d in summary.datasets.values() for s in d.splits.values()]
    rows.append(_row(["<b>all</b>", "", "", f"<b>{sum(s.samples for s in total):,}</b>",
                      f"<b>{sum(sum(s.quarantined.values()) for s in total):,}</b>",
                      f"<b>{sum(s.shards for s in total):,}</b>", f"<b>{_size(sum(s.bytes for s in total))}</b>"],
                     numeric))
    return "<table id='corpus'>" + "".join(rows) + "</table>"


def dataset_section(name: str, d: DatasetSummary, histogram: str | None) -> str:
    e = html.escape
    subset = f"; converted a seeded subset ({e(d.subset)})" if d.subset else ""
    parts = [f"<section id='{e(name)}'><h2>{e(name)}</h2>",
             (f"<p class='meta'>{e(d.supervision)} supervision, {e(d.role)}; {d.classes} classes in the taxonomy; "
             f"root {e(d.root)}{subset}; dataset hash {e(d.dataset_hash)}</p>")]
    if d.preview:
        parts.append(f"<p><a class='preview' href='{e(d.preview)}'>preview: samples with their labels drawn</a></p>")
    numeric = {1, 2, 3, 4, 5}
    rows = [_head(["split", "samples", "quarantined", "shards", "bytes", "labels seen"], numeric)]
    for split, s in d.splits.items():
        rows.append(_row([e(split), f"{s.samples:,}", f"{sum(s.quarantined.values()):,}", f"{s.shards:,}",
                          _size(s.bytes), f"{s.labels_seen} of {d.classes}"], numeric))
    parts.append("<div class='cols'><div><table class='splits'>" + "".join(rows) + "</table>")
    reasons = [(split, why, n) for split, s in d.splits.items() for why, n in s.quarantined.items()]
    if reasons:
        rows = [_head(["split", "quarantined because", "samples"], {2})]
        rows += [_row([e(split), e(why), f"{n:,}"], {2}) for split, why, n in reasons]
        parts.append("<h3>Quarantine reasons</h3><table class='quarantine'>" + "".join(rows) + "</table>")
    parts.append("</div>")
    if histogram:
        parts.append(f"<img class='hist' src='{histogram}' alt='class histogram of {e(name)}'>")
    parts.append("</div></section>")
    return "\n".join(parts)


def render_report(summary: CorpusSummary, histograms: dict[str, str]) -> str:
    e = html.escape
    tables = ", ".join(f"{e(mode)}: {e(path)}" for mode, path in summary.tables.items())
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             f"<title>corpus {e(summary.name)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Corpus {e(summary.name)}</h1>",
             (f"<p class='meta'>recipe {e(summary.recipe)} (hash {e(summary.recipe_hash)}); ssiw {e(summary.code_version)}; "
             f"built {e(summary.built_at)}<br>shards {e(summary.shards)}; encoder {e(summary.encoder)}; tables {tables}</p>"),
             corpus_table(summary)]
    parts += [dataset_section(name, d, histograms.get(name)) for name, d in summary.datasets.items()]
    parts.append("</body></html>")
    return "\n".join(parts)
