"""`ssiw eval-tables`: a run on every zero-shot set of the paper's Tables 3 and 4 that is present, in one
table with the paper's published numbers beside ours.

The published numbers below are copied from the paper (Yin et al., "The devil is in the labels: Semantic
segmentation from sentences"): Table 3 (zero-shot mIoU on seven datasets, the footnotes' single-scale
or multi-scale test per dataset) and Table 4 (IoU of five labels unseen in training, on YouTube-VIS).
A set whose data is not found is listed as absent, not failed. Our mean is over the sets present, and the
paper's mean beside it is recomputed over the same sets from its per-set numbers, so the two compare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import storage
from pipeline.errors import BadInput
from pipeline.safe_write import write_text_atomic


@dataclass(frozen=True)
class ZeroShotSet:
    column: str  # the paper's column
    dataset: str  # our taxonomy
    split: str  # our split holding the labelled frames the paper's test corresponds to
    multi_scale: bool  # Table 3's footnotes: multi-scale (480/720/1080) or single-scale results
    paper_split: str  # Table 1's words


TABLE3_SETS = (
    ZeroShotSet("CamVid", "camvid", "test", False, "test set"),
    ZeroShotSet("KITTI", "kitti", "training", True, "test set (ours: the 200 labelled frames, as MSeg)"),
    ZeroShotSet("VOC", "pascal-voc", "val", True, "validation set"),
    ZeroShotSet("Pascal Context", "pascal-context", "val", True, "validation set"),
    ZeroShotSet("ScanNet", "scannet", "val", False, "validation set"),
    ZeroShotSet("WildDash1", "wilddash", "val", True, "validation set"),
    ZeroShotSet("WildDash2", "wilddash2", "public", True, "test set (ours: the public frames)"),
)
TABLE4_SET = ZeroShotSet("YouTube-VIS", "youtube-vis-unseen", "train", False, "sampled frames")
TABLE4_LABELS = ("lizard", "shark", "frog", "deer", "duck")

# Table 3, mIoU, in TABLE3_SETS order, then the paper's Mean.
PAPER_TABLE3 = {
    "Mseg (HRNet-W48, HD)": (82.4, 62.4, 70.8, 45.2, 48.4, 64.2, 34.6, 58.2),
    "Ours (HRNet-W48, HD)": (82.8, 63.8, 71.6, 45.8, 46.3, 63.4, 34.4, 58.3),
    "Ours (HRNet-W48, HD+OB)": (83.4, 66.0, 74.6, 48.3, 49.8, 63.4, 35.0, 60.1),
    "Ours (HRNet-W48, HD+OI)": (83.4, 66.9, 74.9, 48.6, 52.0, 64.0, 35.7, 60.8),
    "Ours (Segformer-B5, HD)": (83.6, 66.5, 79.9, 53.0, 53.0, 68.2, 37.2, 63.1),
    "Ours (Segformer-B5, HD+OI+OB)": (83.7, 68.9, 81.1, 54.2, 55.3, 69.7, 37.9, 64.4),
}
# Table 4, IoU (single-scale), in TABLE4_LABELS order, then the paper's Mean.
PAPER_TABLE4 = {
    "JoEm": (6.3, 20.3, 15.9, 5.1, 11.5, 11.8),
    "Ours (Word)": (13.1, 11.2, 11.1, 4.2, 22.8, 12.5),
    "Ours (Sentence)": (23.6, 51.6, 25.8, 17.8, 36.1, 31.0),
}
DEFAULT_ROW3 = "Ours (Segformer-B5, HD+OI+OB)"
DEFAULT_ROW4 = "Ours (Sentence)"


@dataclass
class Source:
    """Where one set's frames are read: shards or a dataset root, and which taxonomy labels them."""

    dataset: str
    split: str
    shards: Path | None = None
    root: Path | None = None
    stand_in: bool = False  # another dataset stands in for the paper's (a demo, a test)


@dataclass
class Located:
    present: dict[str, Source] = field(default_factory=dict)  # paper column -> source
    absent: dict[str, str] = field(default_factory=dict)  # paper column -> where we looked
    results: dict[str, dict] = field(default_factory=dict)  # paper column -> its evaluation, once made


def parse_stand_ins(specs: list[str]) -> dict[str, tuple[str, str | None]]:
    """'CamVid=demo-heldout:val' -> {'CamVid': ('demo-heldout', 'val')}; the column by the paper's name or
    our dataset's, case-insensitive."""
    columns = {s.column.lower(): s.column for s in (*TABLE3_SETS, TABLE4_SET)}
    columns.update({s.dataset: s.column for s in (*TABLE3_SETS, TABLE4_SET)})
    out: dict[str, tuple[str, str | None]] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        column = columns.get(name.strip().lower())
        if not sep or not target.strip() or column is None:
            raise BadInput(f"--stand-in {spec!r}: expected SET=DATASET[:SPLIT] with SET one of "
                           f"{', '.join(s.column for s in (*TABLE3_SETS, TABLE4_SET))}")
        dataset, _, split = target.strip().partition(":")
        out[column] = (dataset, split or None)
    return out


def locate(shards: Path | None, data_root: Path | None, stand_ins: dict[str, tuple[str, str | None]]) -> Located:
    """Each set's data: shards/<dataset>/<split>-*.tar first, else data_root/<dataset>/ (a dataset root
    in its own layout); neither: absent, with the places looked at."""
    found = Located()
    for s in (*TABLE3_SETS, TABLE4_SET):
        dataset, split = s.dataset, s.split
        if s.column in stand_ins:
            dataset, split = stand_ins[s.column][0], stand_ins[s.column][1] or s.split
        stand_in = s.column in stand_ins
        looked = []
        if shards is not None:
            if sorted((shards / dataset).glob(f"{split}-*.tar")):
                found.present[s.column] = Source(dataset, split, shards=shards, stand_in=stand_in)
                continue
            looked.append(str(shards / dataset / f"{split}-*.tar"))
        if data_root is not None:
            if (data_root / dataset).is_dir():
                found.present[s.column] = Source(dataset, split, root=data_root / dataset, stand_in=stand_in)
                continue
            looked.append(str(data_root / dataset))
        found.absent[s.column] = "not found: " + (", ".join(looked) or "give --shards or --data-root")
    return found


def samples_for(source: Source, taxonomies: Path | None, limit: int | None):
    from trainer.predict.evaluate import samples_from_root, samples_from_shards

    if source.shards is not None:
        return samples_from_shards(source.shards, source.dataset, source.split, limit)
    from pipeline.taxonomy.load import load_taxonomy_set

    tax = load_taxonomy_set(taxonomies).dataset(source.dataset)
    return samples_from_root(tax, source.root, source.split, limit)


Evaluate = Callable[[Source, bool], dict]  # (source, multi-scale?) -> evaluate_checkpoint's results


def _pct(value) -> float | None:
    return None if value is None or math.isnan(value) else round(100 * float(value), 1)  # NaN: no pixels


def table3_rows(found: Located, evaluate: Evaluate, row: str) -> list[dict]:
    paper = PAPER_TABLE3[row]
    rows = []
    for i, s in enumerate(TABLE3_SETS):
        entry = {"set": s.column, "paper_test": "ms" if s.multi_scale else "ss", "paper_split": s.paper_split,
                 "paper": paper[i]}
        source = found.present.get(s.column)
        if source is None:
            entry.update(present=False, why=found.absent[s.column])
        else:
            results = evaluate(source, s.multi_scale)
            # without multi-scale short edges (--multi-scales ''), an ms set is scored single-scale, and says so
            mode = "multi_scale" if s.multi_scale and "multi_scale" in results else "single_scale"
            entry.update(present=True, dataset=source.dataset, split=source.split, stand_in=source.stand_in,
                         images=results["images"], test=mode[:1] + "s", scales=results[mode]["scales"],
                         ours=_pct(results[mode]["miou"]), results=results)
        rows.append(entry)
    return rows


def table4_rows(found: Located, evaluate: Evaluate, row: str) -> list[dict]:
    paper = PAPER_TABLE4[row]
    source = found.present.get(TABLE4_SET.column)
    if source is None:
        return [{"label": label, "paper": paper[i], "present": False, "why": found.absent[TABLE4_SET.column]}
                for i, label in enumerate(TABLE4_LABELS)]
    results = found.results[TABLE4_SET.column] = evaluate(source, False)
    per_class = results["single_scale"]["per_class"]
    classes = list(per_class)
    rows = []
    for i, label in enumerate(TABLE4_LABELS):
        # the shipped taxonomy names its classes as Table 4 does; a stand-in's classes are taken in order
        name = label if label in per_class else (classes[i] if i < len(classes) else None)
        rows.append({"label": label, "paper": paper[i], "present": name is not None, "class": name,
                     "dataset": source.dataset, "stand_in": source.stand_in,
                     "ours": _pct(per_class.get(name)) if name is not None else None,
                     "why": None if name is not None else f"{source.dataset} has no class {i}"})
    return rows


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def means(rows: list[dict], paper_mean: float) -> dict:
    """Our mean over the present rows that scored, the paper's over the same rows, and its published mean."""
    scored = [r for r in rows if r.get("ours") is not None]
    return {"ours": _mean([r["ours"] for r in scored]), "paper_same_sets": _mean([r["paper"] for r in scored]),
            "paper_published": paper_mean, "sets": len(scored)}


def _cell(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(report: dict) -> str:
    t3, t4 = report["table3"], report["table4"]
    lines = [f"# Zero-shot tables for {report['run']}", "",
             (f"Test protocol: {report['protocol']}. Ours: this run. Paper: the published numbers of the row named "
              "in each table's header (facts from the paper). ss = single-scale, ms = multi-scale (short edges "
              f"{'/'.join(map(str, report['multi_scales']))}; the paper's: 480/720/1080), as Table 3's footnotes "
              "give per dataset."), "",
             f"## Table 3: zero-shot mIoU (paper row: {t3['paper_row']})", "",
             "| set | test | data | images | ours | paper (Table 3) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in t3["rows"]:
        data = (f"{r['dataset']}/{r['split']}" + (" (stand-in)" if r["stand_in"] else "")) if r["present"] else "absent"
        test = r["paper_test"] if r.get("test", r["paper_test"]) == r["paper_test"] else f"{r['test']} (paper: {r['paper_test']})"
        lines.append(f"| {r['set']} | {test} | {data} | {r.get('images', '-')} | {_cell(r.get('ours'))} "
                     f"| {_cell(r['paper'])} |")
    m = t3["mean"]
    lines.append(f"| **mean of the {m['sets']} sets scored** | | | | **{_cell(m['ours'])}** | "
                 f"**{_cell(m['paper_same_sets'])}** (all 7: {_cell(m['paper_published'])}) |")
    lines += ["", f"## Table 4: IoU of labels unseen in training, YouTube-VIS, ss (paper row: {t4['paper_row']})", "",
              "| label | data | ours | paper (Table 4) |", "| --- | --- | --- | --- |"]
    for r in t4["rows"]:
        data = (f"{r['dataset']}: {r['class']}" + (" (stand-in)" if r["stand_in"] else "")) if r["present"] else "absent"
        lines.append(f"| {r['label']} | {data} | {_cell(r.get('ours'))} | {_cell(r['paper'])} |")
    m = t4["mean"]
    lines.append(f"| **mean of the {m['sets']} labels scored** | | **{_cell(m['ours'])}** | "
                 f"**{_cell(m['paper_same_sets'])}** (all 5: {_cell(m['paper_published'])}) |")
    absent = report["absent"]
    lines += ["", "Absent, not evaluated:" + ("" if absent else " none")]
    lines += [f"- {name}: {why}" for name, why in absent.items()] + [""]
    return "\n".join(lines)


def build_report(run: str, protocol: str, found: Located, evaluate: Evaluate, row3: str = DEFAULT_ROW3,
                 row4: str = DEFAULT_ROW4, multi_scales: tuple[int, ...] = (480, 720, 1080)) -> dict:
    for row, known in ((row3, PAPER_TABLE3), (row4, PAPER_TABLE4)):
        if row not in known:
            raise BadInput(f"no paper row {row!r}; choose one of: {'; '.join(known)}")
    rows3 = table3_rows(found, evaluate, row3)
    rows4 = table4_rows(found, evaluate, row4)
    return {
        "run": run, "protocol": protocol, "multi_scales": list(multi_scales),
        "table3": {"paper_row": row3, "rows": rows3, "mean": means(rows3, PAPER_TABLE3[row3][-1])},
        "table4": {"paper_row": row4, "rows": rows4, "mean": means(rows4, PAPER_TABLE4[row4][-1]),
                   "results": found.results.get(TABLE4_SET.column)},
        "absent": dict(found.absent),
        "source": "published numbers: the paper's Table 3 and Table 4",
    }


def write_tables(report: dict, out_dir: storage.Location) -> dict[str, storage.Location]:
    """tables.md and tables.json (with every set's full evaluation results) in out_dir (local or s3://)."""
    storage.makedirs(out_dir)
    paths = {"markdown": storage.join(out_dir, "tables.md"), "json": storage.join(out_dir, "tables.json")}
    write_text_atomic(paths["markdown"], markdown(report))
    write_text_atomic(paths["json"], json.dumps(report, indent=2))
    return paths
