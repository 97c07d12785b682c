"""`make experiments`: small-scale versions of the paper's three claims, on the demo corpus, fixed seeds.

1. Sentence vs word labels: zero-shot mIoU on the held-out taxonomy.
2. L_HD + L_LD vs L_HD alone on the noisy (OpenImages-style) dataset: mIoU on its clean validation masks.
3. Merged training vs the single best dataset: zero-shot mIoU on the held-out taxonomy.

Each run goes through `ssiw train` and `ssiw eval`, exactly as in the demo. Results are written to
results.md whatever they are.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pipeline.demo.corpus import CorpusSize
from pipeline.demo.layout import HELDOUT, TRAIN_SPLITS, Paths
from pipeline.demo.run import Settings, StepFailed, Timer, evaluate, prepare, train
from pipeline.safe_write import write_text_atomic

NOISY = "demo-openimages"


def _miou(results_json: Path) -> float:
    return 100 * json.loads(results_json.read_text())["single_scale"]["miou"]


def run_experiments(s: Settings) -> Path:
    p, timer = Paths(s.out), Timer()
    started = time.perf_counter()
    prepare(p, s, timer)
    merged = {d: {} for d in TRAIN_SPLITS}

    sentence = evaluate(p, timer, train(p, s, timer, "merged-sentence", merged), HELDOUT)
    word = evaluate(p, timer, train(p, s, timer, "merged-word", merged, mode="word"), HELDOUT, mode="word")

    noisy_ld = train(p, s, timer, "noisy-hd-ld", {NOISY: {}})  # the shards say coarse: L_LD
    noisy_hd = train(p, s, timer, "noisy-hd-only", {NOISY: {"supervision": "dense"}})
    ld_val, hd_val = evaluate(p, timer, noisy_ld, NOISY), evaluate(p, timer, noisy_hd, NOISY)

    singles = {NOISY: evaluate(p, timer, noisy_ld, HELDOUT)}
    for dataset in ("demo-ade", "demo-coco"):
        singles[dataset] = evaluate(p, timer, train(p, s, timer, f"single-{dataset}", {dataset: {}}), HELDOUT)
    best = max(singles, key=lambda d: _miou(singles[d]))

    lines = [
        "# Small-scale versions of the paper's claims",
        "",
        (f"Demo corpus ({s.size.train} training images per dataset, {s.size.image_size}px), {s.model} on CPU, "
         f"{s.steps} steps of batch 8 per run, seed {s.seed}. One run per row: differences of a few points are "
         "within run-to-run noise."),
        "",
        "## 1. Sentence vs word label embeddings (zero-shot mIoU on the held-out taxonomy)",
        "",
        "| label text | mIoU |",
        "| --- | --- |",
        f"| sentence: \"An image of {{name}}. {{description}}\" | {_miou(sentence):.1f} |",
        f"| word: \"{{name}}\" | {_miou(word):.1f} |",
        "",
        f"## 2. L_HD + L_LD vs L_HD alone on the noisy dataset ({NOISY}, mIoU on its clean validation masks)",
        "",
        "| loss on noisy masks | mIoU |",
        "| --- | --- |",
        f"| L_LD (lowest-loss 70% of each image's pixels) | {_miou(ld_val):.1f} |",
        f"| L_HD (every pixel) | {_miou(hd_val):.1f} |",
        "",
        "## 3. Merged training vs single datasets (zero-shot mIoU on the held-out taxonomy)",
        "",
        "| training data | mIoU |",
        "| --- | --- |",
        f"| merged: all four datasets | {_miou(sentence):.1f} |",
        *[f"| {d} alone{' (best single)' if d == best else ''} | {_miou(r):.1f} |" for d, r in singles.items()],
        "",
        f"Total time: {time.perf_counter() - started:.0f} s.",
        "",
    ]
    return write_text_atomic(p.out / "results.md", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.demo.experiments", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out/experiments"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--train-images", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = run_experiments(Settings(args.out, args.steps, CorpusSize(train=args.train_images), args.seed))
    except StepFailed as e:
        print(f"\n\033[31mexperiments failed: {e}\033[0m", file=sys.stderr)
        return 1
    print(f"\n{path.read_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
