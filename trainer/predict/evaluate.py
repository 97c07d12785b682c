"""Zero-shot evaluation: mIoU and per-class IoU of a checkpoint on one taxonomy's validation data,
read from shards or straight from the dataset root through its format reader."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline import storage
from pipeline.errors import BadInput, SsiwError
from pipeline.safe_write import save_figure, write_text_atomic
from pipeline.shards.read import OnSkip, SkippedSample
from trainer.predict.predictor import Predictor


def confusion(pred: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """k x k counts (rows: truth, columns: prediction) over pixels whose target is a class (>= 0)."""
    valid = (target >= 0) & (target < k)
    return np.bincount(target[valid] * k + pred[valid], minlength=k * k).reshape(k, k)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU; NaN for a class absent from both truth and prediction."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def samples_from_shards(shard_dir: str | Path, dataset: str, split: str, limit: int | None,
                        on_skip: OnSkip | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(key, image, target) of a split's shards, read through pipeline.shards.read. A sample that
    cannot be read or decoded is skipped and reported to on_skip (default: a line on stderr), as
    training does; `limit` counts the samples yielded."""
    from pipeline.shard_format import SampleError
    from pipeline.shards.read import find_shards, shard_samples
    from trainer.data.augment import AugmentParams, decode_sample

    report = on_skip or print_skip
    urls = find_shards(shard_dir, dataset, split)
    yielded = 0
    for raw in shard_samples(urls, report):
        if limit is not None and yielded >= limit:
            return
        try:
            s = decode_sample(raw, np.random.default_rng(0), AugmentParams.none())
        except SampleError as e:
            report(SkippedSample(raw["__url__"], raw["__key__"], str(e)))
            continue
        if s.supervision == "box":
            raise BadInput(f"{urls[0]}: {dataset} has box supervision; mIoU needs dense labels")
        yielded += 1
        yield s.key, s.image, s.target


def print_skip(skipped: SkippedSample) -> None:
    print(f"[ssiw] skipped unreadable sample: {json.dumps(skipped.as_dict())}", file=sys.stderr, flush=True)


def samples_from_root(tax, root: Path, split: str, limit: int | None):
    from PIL import Image

    from pipeline.convert.readers import get_reader

    reader = get_reader(tax.format)
    for i, item in enumerate(reader.plan(tax, Path(root), split)):
        if limit is not None and i >= limit:
            return
        sample = reader.read(tax, item)
        if sample.label is None:
            raise BadInput(f"{item.image}: no dense label for evaluation")
        image = np.asarray(Image.open(io.BytesIO(sample.image_bytes)).convert("RGB"))
        target = sample.label.astype(np.int64)
        target[target == tax.ignore_index] = -1
        yield sample.key, image, target


def class_names_for(dataset: str, k: int, taxonomies: Path | None = None, label_space=None,
                    table=None) -> list[str]:
    """Each class's name: as the dataset's taxonomy spells it, else its registry label as the run
    recorded it (a training dataset) or the table's lookup gives it; `class N` only when none knows."""
    try:
        from pipeline.taxonomy.load import load_taxonomy_set

        names = load_taxonomy_set(taxonomies).dataset(dataset).class_names
        if len(names) == k:
            return names
    except SsiwError:  # a dataset without a (loadable) taxonomy: ask the run and the table
        pass
    keys = label_space.labels.get(dataset) if label_space is not None else None
    if (keys is None or len(keys) != k) and table is not None:
        from trainer.model.label_space import class_label_keys

        try:
            keys = class_label_keys(table, dataset, taxonomies)
        except SsiwError:
            keys = None
    if keys is not None and len(keys) == k and len(set(keys)) == k:
        return [str(key) for key in keys]
    return [f"class {i}" for i in range(k)]


def run_taxonomies(given, settings) -> list:
    """The taxonomy folders to read class names from: the command's, else the ones the run trained with
    (its config's `taxonomies`, when they are still there); the shipped set is always under them."""
    if given:
        return list(given) if isinstance(given, (list, tuple)) else [given]
    return [Path(f) for f in settings.taxonomies if Path(f).is_dir()]


def eval_class_labels(dataset: str, k: int, table=None, label_space=None,
                      taxonomies: Path | None = None) -> list[str] | None:
    """Registry label key of each evaluated class: from the taxonomy, else the table, else the
    checkpoint's own record of a training dataset; None when none of them knows the dataset."""
    try:
        from pipeline.taxonomy.load import load_taxonomy_set

        keys = load_taxonomy_set(taxonomies).dataset(dataset).class_labels
        if len(keys) == k:
            return list(keys)
    except (KeyError, ValueError, FileNotFoundError):
        pass
    if table is not None:
        from trainer.model.label_space import class_label_keys

        try:
            keys = class_label_keys(table, dataset, taxonomies)
            if len(keys) == k:
                return keys
        except (KeyError, ValueError, FileNotFoundError):
            pass
    keys = label_space.labels.get(dataset) if label_space is not None else None
    return list(keys) if keys is not None and len(keys) == k else None


def seen_in_training(names: list[str], keys: list[str] | None, label_space) -> dict[str, bool] | None:
    """Class name -> whether the checkpoint trained on its label (None: not known, see why_unseen)."""
    if not label_space.labels or keys is None:
        return None
    trained = set(label_space.trained_labels)
    return {name: key in trained for name, key in zip(names, keys)}


PROTOCOLS = ("ours", "authors")
AUTHORS_SINGLE_SCALE = 720  # the SSIW release's single-scale test (`ssiw segment --scale 720`)


def _protocol_predictions(pred: Predictor, protocol: str, vecs, single: list[int], multi: list[int],
                          window, flip: bool):
    """mode -> (scales, function image -> labels) for each evaluated mode.

    ours: the trainer's inference (scores at network resolution, learned temperature, optional windows
    of the training crop). authors: single-scale is their test step for step (trainer/predict/authors.py,
    the same code as `ssiw segment` on an imported run), multi-scale their 640-px sliding windows."""
    if protocol == "authors":
        from trainer.predict.authors import WINDOW, authors_multi_scale, authors_predict, authors_window_probs

        def single_fn(image):
            if window is not None:
                return authors_window_probs(pred.net, image, vecs, single[0], WINDOW, flip, pred.device).argmax(0)
            return authors_predict(pred.net, image, vecs, single[0], None, pred.device)[0]

        def multi_fn(image):
            return authors_multi_scale(pred.net, image, vecs, multi, WINDOW, flip, pred.device).argmax(0)

        return {"single_scale": (single, single_fn), "multi_scale": (multi, multi_fn)}
    return {m: (scales, lambda image, scales=scales: pred.scores(image, vecs, scales, window, flip).argmax(0))
            for m, scales in (("single_scale", single), ("multi_scale", multi))}


def evaluate_checkpoint(checkpoint, dataset: str, samples, vectors: np.ndarray | None = None, table=None,
                        single_scale: int | None = None, multi_scales=(480, 720, 1080), sliding: bool = False,
                        flip: bool = False, predictor: Predictor | None = None,
                        taxonomies: Path | None = None, protocol: str = "ours",
                        skipped: list[SkippedSample] | None = None) -> dict:
    """mIoU single-scale and multi-scale over (key, image, target) samples, by `protocol` (PROTOCOLS).
    `skipped` is the list the samples' reader appends what it skipped to; the results count and name them."""
    if protocol not in PROTOCOLS:
        raise BadInput(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    pred = predictor or Predictor.from_checkpoint(checkpoint)
    vecs = vectors if vectors is not None else pred.vectors_for(dataset, table)
    k = len(vecs)
    window = pred.settings.crop if sliding else None
    default_scale = AUTHORS_SINGLE_SCALE if protocol == "authors" else pred.settings.short_edge
    single = [single_scale or default_scale]
    modes = {m: v for m, v in _protocol_predictions(pred, protocol, vecs, single, list(multi_scales), window,
                                                    flip).items() if v[0]}
    conf = {m: np.zeros((k, k), dtype=np.int64) for m in modes}
    n = 0
    for key, image, target in samples:
        for m, (_, predict) in modes.items():
            conf[m] += confusion(np.asarray(predict(image), dtype=np.int64), target, k)
        n += 1
    if n == 0:
        raise BadInput(f"no evaluation samples found for {dataset}")
    taxonomies = run_taxonomies(taxonomies, pred.settings)
    names = class_names_for(dataset, k, taxonomies, pred.label_space, table)
    keys = eval_class_labels(dataset, k, table, pred.label_space, taxonomies)
    results = {"checkpoint": str(checkpoint), "dataset": dataset, "images": n, "protocol": protocol,
               "sliding": sliding, "flip": flip,
               "seen_in_training": seen_in_training(names, keys, pred.label_space),
               "held_out_in_training": list(pred.label_space.held_out),
               "samples_skipped": len(skipped or []), "skipped": [x.as_dict() for x in skipped or []]}
    if results["seen_in_training"] is None:
        results["seen_unknown_because"] = (
            "the checkpoint predates the record of its training labels" if not pred.label_space.labels else
            f"no taxonomy, table or training record gives the labels of {dataset}'s classes (give --taxonomies)")
    for m, (scales, _) in modes.items():
        iou = iou_from_confusion(conf[m])
        results[m] = {
            "scales": scales, "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(np.diag(conf[m]).sum() / max(conf[m].sum(), 1)),
            "per_class": {names[i]: (None if np.isnan(iou[i]) else float(iou[i])) for i in range(k)},
        }
    return results


def seen_summary(results: dict) -> str:
    """One line: which evaluated labels the model was trained on (not zero-shot) and which not."""
    seen = results.get("seen_in_training")
    if seen is None:
        return f"labels seen in training: unknown ({results.get('seen_unknown_because', 'not recorded')})"
    yes = [n for n, s in seen.items() if s]
    no = [n for n, s in seen.items() if not s]
    return (f"labels seen in training ({len(yes)}): {', '.join(yes) or 'none'}; "
            f"unseen, zero-shot ({len(no)}): {', '.join(no) or 'none'}")


def write_report(results: dict, out_dir: storage.Location) -> dict[str, storage.Location]:
    """results.json, a per-class IoU bar chart (PNG) and a rich table on the console. out_dir may be
    an s3:// folder (beside the checkpoint of a run kept in object storage)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console
    from rich.table import Table

    storage.makedirs(out_dir)
    paths = {"json": storage.join(out_dir, "results.json"), "chart": storage.join(out_dir, "per_class_iou.png")}
    write_text_atomic(paths["json"], json.dumps(results, indent=2))

    modes = [m for m in ("single_scale", "multi_scale") if m in results]
    table = Table(title=f"{results['dataset']}: {results['images']} images, "
                        f"{results.get('protocol', 'ours')} test protocol")
    table.add_column("class", overflow="fold")  # long class names fold: the table fits 80 columns
    for m in modes:
        table.add_column(f"IoU {m.replace('_', '-')}", justify="right")
    names = list(results[modes[0]]["per_class"])
    for name in names:
        cells = [results[m]["per_class"][name] for m in modes]
        table.add_row(name, *("-" if c is None else f"{100 * c:.1f}" for c in cells))
    table.add_row("[bold]mIoU", *(f"[bold]{100 * results[m]['miou']:.1f}" for m in modes))
    console = Console()
    console.print(table)
    console.print(seen_summary(results))
    if results.get("samples_skipped"):
        console.print(f"{results['samples_skipped']} unreadable samples skipped (each named in {paths['json']}):")
        for x in results["skipped"][:10]:
            console.print(f"  {x['shard']}: {x['key']}: {x['reason']}", highlight=False)

    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(names)), 4))
    width = 0.8 / len(modes)
    x = np.arange(len(names))
    for i, m in enumerate(modes):
        vals = [np.nan if v is None else 100 * v for v in results[m]["per_class"].values()]
        ax.bar(x + i * width, vals, width, label=f"{m.replace('_', '-')} (mIoU {100 * results[m]['miou']:.1f})")
    ax.set_xticks(x + width * (len(modes) - 1) / 2, names, rotation=90, fontsize=7)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results['dataset']} per-class IoU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, paths["chart"], dpi=120)
    return paths
