"""`ssiw shards preview`: one self-contained HTML page to look at converted shards before training.

Per dataset: a grid of samples with the label map drawn over the image (boxes for box data), a legend of
the classes shown with display names and label sentences, the class histogram from the manifest, and the
quarantined samples with their reasons, and the samples the shard reader had to skip (a damaged tar
or member). Images are inline data: URIs, so the page is a single file.

Only the first samples of each split are read (tars are streamed and closed as soon as enough samples
are in), so a preview of a 1 GB shard in object storage costs a few MB of reads.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field

import numpy as np

from pipeline import storage
from pipeline.errors import NotFound
from pipeline.palette import palette as class_palette
from pipeline.shard_format import MANIFEST_SUFFIX, SampleError, ShardRecord, parse_sample, quarantine_name
from pipeline.shards.read import first_samples

THUMB_WIDTH = 240
OVERLAY_ALPHA = 0.5
HISTOGRAM_TOP = 30
QUARANTINE_SHOWN = 200


@dataclass
class Thumb:
    key: str
    split: str
    uri: str  # data:image/jpeg;base64,...
    classes: list[int]
    width: int
    height: int


@dataclass
class ClassInfo:
    index: int
    colour: tuple[int, int, int]
    name: str  # as the dataset spells it
    display: str = ""  # registry display name
    sentence: str = ""  # the label text the embeddings are made from


@dataclass
class DatasetPreview:
    dataset: str
    supervision: str
    samples: int
    shards: int
    splits: list[str]
    thumbs: list[Thumb] = field(default_factory=list)
    legend: list[ClassInfo] = field(default_factory=list)
    histogram_uri: str = ""
    quarantine: list[dict] = field(default_factory=list)
    quarantined: int = 0
    unreadable: list[dict] = field(default_factory=list)  # samples the shard reader skipped: shard, key, reason


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def dataset_names(shard_dir: storage.Location) -> list[str]:
    """Datasets that have at least one manifest under the shard folder."""
    found = storage.glob(shard_dir, f"*/*{MANIFEST_SUFFIX}")
    return sorted({storage.name(str(p).rsplit("/", 1)[0]) for p in found})


def _manifests(shard_dir: storage.Location, dataset: str):
    import polars as pl

    paths = storage.glob(storage.join(shard_dir, dataset), f"*{MANIFEST_SUFFIX}")
    if not paths:
        raise NotFound(f"no manifests for {dataset!r} under {shard_dir}: run `ssiw convert` first")
    return pl.concat([storage.read_parquet(p) for p in paths])


def palette(k: int) -> np.ndarray:
    return class_palette(max(k, 1))


def draw_sample(members: dict[str, bytes], colours: np.ndarray, width: int = THUMB_WIDTH) -> tuple[bytes, ShardRecord]:
    """A JPEG thumbnail: the image with its label map blended in, or its boxes outlined."""
    from PIL import Image, ImageDraw

    sample = parse_sample(members)
    record = sample.record
    with Image.open(io.BytesIO(sample.image)) as im:
        image = im.convert("RGB")
    scale = width / image.width
    size = (width, max(1, round(image.height * scale)))
    thumb = np.asarray(image.resize(size, Image.BILINEAR)).astype(np.float32)
    if sample.label_png is not None:
        with Image.open(io.BytesIO(sample.label_png)) as lab:
            label = np.asarray(lab.resize(size, Image.NEAREST)).astype(np.int64)
        shown = label != record.ignore_index
        idx = np.where(shown, label, 0) % len(colours)
        blend = thumb * (1 - OVERLAY_ALPHA) + colours[idx].astype(np.float32) * OVERLAY_ALPHA
        thumb = np.where(shown[..., None], blend, thumb)
    canvas = Image.fromarray(thumb.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for x0, y0, x1, y1, c in record.boxes or []:
        colour = tuple(int(v) for v in colours[int(c) % len(colours)])
        draw.rectangle([x0 * scale, y0 * scale, max(x0, x1 - 1) * scale, max(y0, y1 - 1) * scale],
                       outline=colour, width=2)
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=85)
    return out.getvalue(), record


def histogram_png(per_class, names: list[str], colours: np.ndarray, title: str) -> bytes:
    """Horizontal bars: images containing each class (the most frequent HISTOGRAM_TOP)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = per_class.head(HISTOGRAM_TOP)
    index = rows["class_index"].to_list()
    labels = [names[i] if i < len(names) else str(i) for i in index]
    fig, ax = plt.subplots(figsize=(5.5, 0.9 + 0.22 * max(len(index), 1)))
    try:
        ax.barh(range(len(index)), rows["images"].to_list(), color=[colours[i % len(colours)] / 255 for i in index])
        ax.set_yticks(range(len(index)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("images containing the class")
        more = f" (top {len(index)} of {len(per_class)})" if len(per_class) > len(index) else ""
        ax.set_title(title + more, fontsize=9)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=90)
        return out.getvalue()
    finally:
        plt.close(fig)


def _quarantine(shard_dir: storage.Location, dataset: str, splits: list[str]) -> list[dict]:
    entries = []
    for split in splits:
        path = storage.join(shard_dir, dataset, quarantine_name(split))
        if storage.exists(path):
            for line in storage.read_text(path).splitlines():
                if line.strip():
                    entries.append({"split": split, **json.loads(line)})
    return entries


def _read_wanted(url: str, keys: set[str]) -> tuple[dict[str, dict], list[dict]]:
    """The wanted samples of one tar, and what the shard reader skipped on the way."""
    skipped: list[dict] = []
    members = first_samples(url, keys, lambda x: skipped.append(x.as_dict()))
    return members, skipped


def choose_samples(manifests, n: int):
    """n samples taken round-robin over the splits, each split's in manifest order (the order inside the
    tars): every split shows up, and each tar is read only up to the samples taken from it."""
    import polars as pl

    ranked = manifests.with_row_index("_row").with_columns(pl.int_range(pl.len()).over("split").alias("_rank"))
    return ranked.sort(["_rank", "split"]).head(n).sort("_row").drop("_row", "_rank")


def preview_dataset(shard_dir: storage.Location, dataset: str, n: int, texts: dict[str, list[ClassInfo]]) -> DatasetPreview:
    """Everything the page shows for one dataset; `texts` gives class names and sentences per dataset."""
    from pipeline.shards.stats import class_table

    manifests = _manifests(shard_dir, dataset)
    splits = sorted(set(manifests["split"].to_list()))
    known = texts.get(dataset, [])
    num_classes = max([len(known), *(c + 1 for cl in manifests["classes_present"].to_list() for c in (cl or []))])
    colours = palette(num_classes)
    names = [c.name for c in known] or [str(i) for i in range(num_classes)]
    preview = DatasetPreview(dataset=dataset, supervision=str(manifests["supervision"][0]),
                             samples=len(manifests), shards=manifests.select("split", "shard").n_unique(),
                             splits=splits)
    chosen = choose_samples(manifests, n)
    for (split, shard), group in chosen.group_by(["split", "shard"], maintain_order=True):
        keys = group["key"].to_list()
        url = str(storage.join(shard_dir, dataset, shard))
        members, skipped = _read_wanted(url, set(keys))
        preview.unreadable += skipped
        for key in keys:
            if key not in members:
                if not any(x["key"] == key for x in skipped):
                    raise NotFound(f"{url}: sample {key} is in the manifest but not in the tar")
                continue
            try:
                jpeg, record = draw_sample(members[key], colours)
            except SampleError as err:  # a record the trainer would skip too
                preview.unreadable.append({"shard": url, "key": key, "reason": str(err)})
                continue
            preview.thumbs.append(Thumb(key, split, _data_uri(jpeg, "image/jpeg"), record.classes_present,
                                        record.width, record.height))
    shown = sorted({c for t in preview.thumbs for c in t.classes})
    for c in shown:
        info = known[c] if c < len(known) else ClassInfo(c, (0, 0, 0), str(c))
        preview.legend.append(ClassInfo(c, tuple(int(v) for v in colours[c]), info.name, info.display, info.sentence))
    per_class = class_table(manifests)
    if len(per_class):
        png = histogram_png(per_class, names, colours, f"{dataset}: classes in {len(manifests)} samples")
        preview.histogram_uri = _data_uri(png, "image/png")
    entries = _quarantine(shard_dir, dataset, splits)
    preview.quarantined = len(entries)
    preview.quarantine = entries[:QUARANTINE_SHOWN]
    return preview


def class_texts(taxonomies, cache_dir) -> dict[str, list[ClassInfo]]:
    """Dataset -> its classes with display names and label sentences (description cache when present)."""
    from pipeline.describe.cache import cache_path, read_cache
    from pipeline.describe.texts import label_entries, override_key
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(taxonomies)
    cache = read_cache(cache_path(cache_dir)) if cache_dir is not None else {}
    entries = {e.key: e for e in label_entries(taxset, cache)}
    out: dict[str, list[ClassInfo]] = {}
    for name, tax in taxset.datasets.items():
        infos = []
        for i, cls in enumerate(tax.classes):
            entry = entries.get(override_key(name, cls.name)) or entries[cls.label]
            infos.append(ClassInfo(i, (0, 0, 0), cls.name, entry.name, entry.text()))
        out[name] = infos
    return out


_STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
.meta{color:#555;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(THUMB_WIDTHpx,1fr));gap:8px}
figure{margin:0;background:#fff;border:1px solid #ddd;padding:4px}
figure img{width:100%;display:block} figcaption{font-size:11px;color:#444;word-break:break-all}
.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start;margin-top:12px}
table{border-collapse:collapse;font-size:12px;max-width:640px} td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #333;vertical-align:middle}
""".replace("THUMB_WIDTH", str(THUMB_WIDTH))


def render_html(previews: list[DatasetPreview], source: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>ssiw shards preview</title>",
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>Shards in {e(source)}</h1>",
             (f"<p class='meta'>{len(previews)} dataset(s); the first samples of each split, label maps blended "
              f"at {int(OVERLAY_ALPHA * 100)}%, boxes outlined, ignore pixels left as they are.</p>")]
    for p in previews:
        parts.append(f"<section id='{e(p.dataset)}'><h2>{e(p.dataset)}</h2>")
        parts.append(f"<p class='meta'>{e(p.supervision)} supervision; {p.samples} samples in {p.shards} shard(s); "
                     f"splits: {e(', '.join(p.splits))}; {p.quarantined} quarantined</p>")
        parts.append("<div class='grid'>")
        for t in p.thumbs:
            parts.append(f"<figure><img src='{t.uri}' alt='{e(t.key)}'><figcaption>{e(t.split)}/{e(t.key)} "
                         f"({t.width}x{t.height})</figcaption></figure>")
        parts.append("</div><div class='cols'>")
        if p.legend:
            parts.append("<table><tr><th></th><th>#</th><th>class</th><th>label</th><th>sentence</th></tr>")
            for c in p.legend:
                r, g, b = c.colour
                parts.append(f"<tr><td><span class='sw' style='background:rgb({r},{g},{b})'></span></td>"
                             f"<td>{c.index}</td><td>{e(c.name)}</td><td>{e(c.display)}</td><td>{e(c.sentence)}</td></tr>")
            parts.append("</table>")
        if p.histogram_uri:
            parts.append(f"<img class='hist' src='{p.histogram_uri}' alt='class histogram of {e(p.dataset)}'>")
        parts.append("</div>")
        if p.unreadable:
            parts.append(f"<h3>Unreadable in the shards: {len(p.unreadable)}</h3><table><tr><th>shard</th><th>key</th>"
                         "<th>reason</th></tr>")
            for u in p.unreadable:
                parts.append(f"<tr><td>{e(storage.name(u['shard']))}</td><td>{e(u['key'])}</td><td>{e(u['reason'])}</td></tr>")
            parts.append("</table>")
        if p.quarantine:
            more = f" (first {len(p.quarantine)} shown)" if p.quarantined > len(p.quarantine) else ""
            parts.append(f"<h3>Quarantined: {p.quarantined}{more}</h3><table><tr><th>split</th><th>key</th>"
                         "<th>file</th><th>reason</th></tr>")
            for q in p.quarantine:
                parts.append(f"<tr><td>{e(q['split'])}</td><td>{e(str(q.get('key')))}</td>"
                             f"<td>{e(str(q.get('file')))}</td><td>{e(str(q.get('reason')))}</td></tr>")
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
