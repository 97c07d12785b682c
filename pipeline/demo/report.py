"""The demo's report: figures from the files the `ssiw` commands wrote, and a markdown summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from pipeline.corpus.summary import REPORT_FILE, SUMMARY_FILE
from pipeline.demo.layout import HELDOUT, VAL_SPLITS, first_validation_items
from pipeline.safe_write import save_figure, write_text_atomic


def chance_miou(targets: list[np.ndarray], k: int) -> float:
    """Expected mIoU of guessing every pixel uniformly at random among k classes.

    With class c covering a fraction f of valid pixels, its expected IoU is f / (1 + (k - 1) f)."""
    counts = np.zeros(k)
    for t in targets:
        valid = t[(t >= 0) & (t < k)]
        counts += np.bincount(valid, minlength=k)
    present = counts > 0
    f = counts[present] / counts.sum()
    return float(np.mean(f / (1 + (k - 1) * f)))


def heldout_chance(p, dataset: str, split: str) -> tuple[float, int]:
    from pipeline.taxonomy.load import load_taxonomy_set
    from trainer.predict.evaluate import samples_from_shards

    k = load_taxonomy_set(p.taxonomies).dataset(dataset).num_classes
    targets = [t for _, _, t in samples_from_shards(p.shards, dataset, split, None)]
    return chance_miou(targets, k), k


def plot_losses(losses_csv: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(losses_csv) as f:
        rows = list(csv.DictReader(f))
    steps = np.array([int(r["step"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, label in (("total", "total"), ("hd", "L_HD dense"), ("ld", "L_LD coarse"), ("wd", "L_WD boxes")):
        values = np.array([float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows])
        if np.isfinite(values).any():
            window = 10
            smooth = np.convolve(np.nan_to_num(values), np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (moving average of 10)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("training losses")
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def _colour(labels: np.ndarray, k: int, ignore: int) -> np.ndarray:
    from pipeline.palette import palette

    colours = np.vstack([palette(k), [[0, 0, 0]]])
    idx = np.where(labels == ignore, k, np.minimum(labels, k))
    return colours[idx]


def plot_examples(p, per_dataset: int, out: Path) -> Path:
    """One row per example: image, ground truth (or boxes), prediction; colours per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patches
    from PIL import Image

    from pipeline.convert.readers import get_reader
    from pipeline.palette import palette
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(p.taxonomies)
    examples = [(d, item) for d, items in first_validation_items(p, per_dataset).items() for item in items]
    fig, axes = plt.subplots(len(examples), 3, figsize=(7.5, 2.5 * len(examples)))
    for row, (dataset, item) in enumerate(examples):
        tax = taxset.dataset(dataset)
        sample = get_reader(tax.format).read(tax, item)
        image = np.asarray(Image.open(io.BytesIO(sample.image_bytes)).convert("RGB"))
        pred_path = p.figures / "segment" / dataset / f"{Path(item.image).stem}.label.png"
        pred = np.asarray(Image.open(pred_path))
        ax_img, ax_gt, ax_pred = axes[row]
        ax_img.imshow(image)
        ax_img.set_ylabel(dataset, fontsize=8)
        if sample.label is not None:
            ax_gt.imshow(_colour(sample.label, tax.num_classes, tax.ignore_index))
        else:
            ax_gt.imshow(image)
            colours = palette(tax.num_classes) / 255.0
            for x0, y0, x1, y1, c in sample.boxes or []:
                ax_gt.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.5, color=colours[c]))
        ax_pred.imshow(_colour(pred, tax.num_classes, -1))
        present = sorted(set(np.unique(pred).tolist()))
        ax_pred.set_title(", ".join(tax.class_names[c] for c in present)[:60], fontsize=6)
        for ax in (ax_img, ax_gt, ax_pred):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("image", fontsize=9)
    axes[0][1].set_title("ground truth (boxes for box data)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, dpi=100)


def separation_scores(p) -> dict[str, float]:
    from pipeline.embed.table import load_table
    from pipeline.label_audit.similarity import registry_space, separation
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(p.taxonomies)
    scores = {}
    for mode in ("sentence", "word"):
        space = registry_space(load_table(p.table(mode)), taxset)
        scores[mode] = separation(space.similarity(), space.groups).score
    return scores


def _rel(path: Path, base: Path) -> str:
    return str(Path(path).resolve().relative_to(base.resolve()))


def write_demo_report(p, run: Path, heldout_json: Path, in_domain_json: Path, timings, total_s: float) -> Path:
    heldout = json.loads(heldout_json.read_text())
    in_domain = json.loads(in_domain_json.read_text())
    chance, k = heldout_chance(p, HELDOUT, VAL_SPLITS[HELDOUT])
    seps = separation_scores(p)
    loss_png = plot_losses(run / "losses.csv", p.figures / "losses.png")
    examples_png = plot_examples(p, 1, p.figures / "examples.png")
    h = heldout["single_scale"]
    lines = [
        "# ssiw demo report",
        "",
        ("Four small training datasets in real on-disk formats (ADE20K-style dense, COCO-panoptic-style dense, "
         "OpenImages-style noisy masks, Objects365-style boxes), each with its own taxonomy naming, merged through "
         "label sentences and trained together on CPU. The held-out set uses class names that no training taxonomy "
         "uses; it is labelled zero-shot, from its sentences alone."),
        "",
        "## Results",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| zero-shot mIoU on {HELDOUT} ({k} classes, {heldout['images']} images) | **{100 * h['miou']:.1f}** |",
        f"| chance mIoU for {k} classes (uniform random labels on the same pixels) | {100 * chance:.1f} |",
        f"| zero-shot pixel accuracy on {HELDOUT} | {100 * h['pixel_accuracy']:.1f} (chance {100 / k:.1f}) |",
        f"| in-domain mIoU on demo-ade validation | {100 * in_domain['single_scale']['miou']:.1f} |",
        f"| label-space separation, sentences (MiniLM) | {seps['sentence']:.3f} |",
        f"| label-space separation, words (MiniLM) | {seps['word']:.3f} |",
        "",
        "Per-class IoU on the held-out taxonomy:",
        "",
        "| class | IoU |",
        "| --- | --- |",
        *[f"| {name} | {'-' if v is None else f'{100 * v:.1f}'} |" for name, v in h["per_class"].items()],
        "",
        f"![per-class IoU]({_rel(heldout_json.parent / 'per_class_iou.png', p.out)})",
        "",
        "## Corpus",
        "",
        (f"`ssiw corpus build` wrote [the corpus report]({_rel(p.shards / REPORT_FILE, p.out)}) (every dataset's "
         f"splits, class histogram, quarantine reasons and a preview of its samples) and "
         f"[corpus.json]({_rel(p.shards / SUMMARY_FILE, p.out)}) beside the shards."),
        "",
        "## Examples (image, ground truth, prediction with the dataset's own label sentences)",
        "",
        f"![examples]({_rel(examples_png, p.out)})",
        "",
        "## Training",
        "",
        f"![losses]({_rel(loss_png, p.out)})",
        "",
        "## Label space (pairwise cosine similarity of the label sentences, grouped)",
        "",
        f"![similarity]({_rel(p.figures / 'similarity-sentence.png', p.out)})",
        "",
        "## Steps",
        "",
        "| step | seconds |",
        "| --- | --- |",
        *[f"| {title} | {seconds:.1f} |" for title, seconds in timings],
        f"| **total** | **{total_s:.0f}** |",
        "",
    ]
    path = p.out / "report.md"
    return write_text_atomic(path, "\n".join(lines))
