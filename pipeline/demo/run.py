"""`make demo`: the whole mission offline on one machine, through the same `ssiw` commands a user runs.

Each step prints a header, runs, and is timed; a failing step stops the demo with its command and
exit code. The report (demo-out/report.md) is written last from the files the commands produced.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.demo import report
from pipeline.demo.corpus import CorpusSize, write_corpus
from pipeline.demo.layout import (
    DEMO_RECIPE,
    HELDOUT,
    RECIPE_OUT,
    TRAIN_SPLITS,
    VAL_SPLITS,
    Paths,
    first_validation_items,
)
from pipeline.safe_write import write_text_atomic
from pipeline.taxonomy.yaml_io import dump_yaml


class StepFailed(RuntimeError):
    pass


@dataclass
class Settings:
    out: Path
    steps: int = 400
    size: CorpusSize = field(default_factory=CorpusSize)
    seed: int = 0
    model: str = "resnet18"


class Timer:
    """Prints each step's header and keeps (step, seconds) for the report."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []
        self.count = 0

    def step(self, title: str):
        timer = self

        class _Step:
            def __enter__(self):
                timer.count += 1
                print(f"\n\033[1m== [{timer.count}] {title}\033[0m", flush=True)
                self.start = time.perf_counter()

            def __exit__(self, kind, value, tb):
                seconds = time.perf_counter() - self.start
                if kind is None:
                    timer.rows.append((title, seconds))
                    print(f"   done in {seconds:.1f} s", flush=True)

        return _Step()


def ssiw(*args: object) -> None:
    """Run one `ssiw` command as a user would (same interpreter), streaming its progress."""
    cmd = [sys.executable, "-m", "pipeline", *map(str, args)]
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    shown = "ssiw " + shlex.join(map(str, args))  # quoted, so the line can be pasted as it is ('' included)
    print(f"   $ {shown}", flush=True)
    code = subprocess.call(cmd, env=env)
    if code != 0:
        raise StepFailed(f"`{shown}` failed with exit code {code}")


def train_config(p: Paths, s: Settings, name: str, datasets: dict[str, dict], table: Path) -> Path:
    """A training YAML for the demo's small CPU model; written as a user would write one. The whole corpus
    with its sentence table is named by its corpus.json, as a user of `ssiw corpus build` would; a subset
    or another table is listed field by field."""
    whole = datasets == {d: {} for d in TRAIN_SPLITS} and table == p.table()
    where = {"corpus": str(p.shards / "corpus.json")} if whole else {
        "shards": str(p.shards), "table": str(table),
        "datasets": [{"name": d, "split": TRAIN_SPLITS[d], **extra} for d, extra in datasets.items()]}
    cfg = {
        "name": name, "out_dir": str(p.runs), **where,
        "model": s.model, "weights": "random", "width": 64, "crop": [s.size.image_size] * 2, "short_edge": s.size.image_size,
        "scale": [0.75, 1.5], "batch_size": 8, "steps": s.steps, "epoch_samples": 8 * s.steps,
        "lr": 1.0e-3, "warmup_steps": 20, "workers": 1, "amp": False, "seed": s.seed,
        "checkpoint_every": s.steps, "log_every": 10,
    }
    return write_text_atomic(p.out / "configs" / f"{name}.yaml", dump_yaml(cfg))


def prepare(p: Paths, s: Settings, timer: Timer) -> None:
    """Corpus, label texts, embeddings, label-space figures and shards: everything before training."""
    with timer.step("Generate a multi-domain corpus in four training formats and one held-out set"):
        write_corpus(p.out, s.size, s.seed)
        print(f"   wrote {p.out / 'data'} and taxonomy YAMLs in {p.taxonomies}")
    with timer.step("Validate the taxonomies"):
        ssiw("taxonomy", "validate", "--taxonomies", p.taxonomies)
    with timer.step("Build the corpus from its recipe: describe every label (offline), embed sentences and words "
                    "with MiniLM, convert every dataset into WebDataset shards (Ray)"):
        ssiw("corpus", "build", DEMO_RECIPE, *recipe_overrides(p))
    with timer.step("Audit the label texts"):
        ssiw("labels", "similarity", "--encoder", "minilm", "--mode", "both", "--taxonomies", p.taxonomies,
             "--cache", p.cache, "--out", p.figures / "similarity.png")


def recipe_overrides(p: Paths) -> list[object]:
    """The demo recipe's paths are those of `make demo` (demo-out/ under the current directory); any
    other output folder is passed in their place."""
    if p.out == Path(RECIPE_OUT):
        return []
    return ["--data-root", p.out / "data", "--out", p.shards, "--cache", p.cache, "--taxonomies", p.taxonomies]


def train(p: Paths, s: Settings, timer: Timer, name: str, datasets: dict[str, dict], mode: str = "sentence") -> Path:
    with timer.step(f"Train '{name}' on {', '.join(datasets)} (CPU, {s.steps} steps)"):
        ssiw("train", train_config(p, s, name, datasets, p.table(mode)))
    return p.runs / name


def evaluate(p: Paths, timer: Timer, run: Path, dataset: str, mode: str = "sentence") -> Path:
    out = p.eval_dir(run.name, dataset)
    with timer.step(f"Evaluate '{run.name}' on {dataset} ({'zero-shot' if dataset == HELDOUT else 'validation'})"):
        ssiw("eval", run, "--dataset", dataset, "--shards", p.shards, "--split", VAL_SPLITS[dataset],
             "--table", p.table(mode), "--taxonomies", p.taxonomies, "--multi-scales", "", "--out", out)
    return out / "results.json"


def paper_tables(p: Paths, timer: Timer, run: Path) -> Path:
    """`ssiw eval-tables` with the held-out set in CamVid's place: the paper's other sets are absent here."""
    out = p.out / "paper-tables"
    with timer.step(f"Place the run in the paper's Tables 3 and 4 ({HELDOUT} stands in for CamVid)"):
        ssiw("eval-tables", run, "--table", p.table(), "--shards", p.shards, "--taxonomies", p.taxonomies,
             "--stand-in", f"CamVid={HELDOUT}:{VAL_SPLITS[HELDOUT]}", "--multi-scales", "", "--out", out)
    return out / "tables.md"


def segment_examples(p: Paths, timer: Timer, run: Path, per_dataset: int = 2) -> dict[str, list[Path]]:
    """Label the first validation images of every dataset with that dataset's own label names."""
    images: dict[str, list[Path]] = {}
    with timer.step("Segment example images with each dataset's label sentences"):
        for dataset, items in first_validation_items(p, per_dataset).items():
            paths = [Path(item.image) for item in items]
            ssiw("segment", run, *paths, "--dataset", dataset, "--table", p.table(), "--taxonomies", p.taxonomies,
                 "--out", p.figures / "segment" / dataset)
            images[dataset] = paths
    return images


def run_demo(s: Settings) -> Path:
    p, timer = Paths(s.out), Timer()
    started = time.perf_counter()
    prepare(p, s, timer)
    run = train(p, s, timer, "demo", {d: {} for d in TRAIN_SPLITS})
    heldout = evaluate(p, timer, run, HELDOUT)
    in_domain = evaluate(p, timer, run, "demo-ade")
    paper_tables(p, timer, run)
    segment_examples(p, timer, run)
    with timer.step("Write the report"):
        path = report.write_demo_report(p, run, heldout, in_domain, timer.rows, time.perf_counter() - started)
        print(f"   {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default: 400)")
    parser.add_argument("--train-images", type=int, default=160, help="training images per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    settings = Settings(args.out, args.steps, CorpusSize(train=args.train_images), args.seed)
    try:
        path = run_demo(settings)
    except StepFailed as e:
        print(f"\n\033[31mdemo failed: {e}\033[0m", file=sys.stderr)
        return 1
    print(f"\n\033[32mdemo complete: {path}\033[0m")
    return 0
