"""Planning the two big indexes (Objects365 v2 train, OpenImages V6 train) at 1%, 3% and 10% of their
real size, each in a fresh subprocess that only plans (to a stored plan, as `ssiw convert` does):
peak RSS, seconds, and what stays in the driver afterwards. The last rows extrapolate linearly to
100%; the target is under 4 GiB and under 10 minutes on one core.

    python -m bench plan                       # part of `make bench`
    python -m bench.bench_plan --fraction 1.0  # one full-size run (needs ~6 GB of disk for the JSON)
    python -m bench.bench_plan --dataset objects365 --fraction 0.03 --subset 0.5  # planning a seeded half
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRACTIONS = (0.01, 0.03, 0.10)
GIB = 2**30
DATASETS = {"objects365": ("objects365-v2", "train"), "openimages": ("openimages-v6-seg", "train")}


def _child(dataset: str, root: str, out: str, subset: float | None = None) -> None:
    """Plan one split into a store and print one JSON line (runs in its own process); with `subset`, a
    seeded share of it (pipeline/convert/subset.py)."""
    import gc
    import pickle

    from pipeline.convert.plan import parse_size, plan_split
    from pipeline.convert.readers import get_reader
    from pipeline.paths import default_taxonomy_dir
    from pipeline.taxonomy.load import load_dataset_file

    name, split = DATASETS[dataset]
    tax, _ = load_dataset_file(default_taxonomy_dir() / f"{name}.yaml")
    start = time.perf_counter()
    cpu = time.process_time()
    from pipeline.convert.subset import Subset

    plans = plan_split(get_reader(tax.format), tax, Path(root), split, parse_size("1GB"), store=Path(out),
                       subset=Subset(fraction=subset) if subset else None)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.collect()
    import psutil

    held = psutil.Process().memory_info().rss  # the driver while tasks would run: plans only
    # VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a child forked from a big parent
    # (`python -m bench` after the other benchmarks) would report the parent's size.
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024
    print(json.dumps({"items": sum(p.count for p in plans), "shards": len(plans), "seconds": seconds,
                      "cpu_seconds": cpu, "peak_rss": peak, "held_rss": held,
                      "plan_bytes": max(len(pickle.dumps(p)) for p in plans)}))


def measure(dataset: str, fraction: float, tmp: Path, subset: float | None = None) -> dict:
    """Generate the index at `fraction`, plan it in a subprocess, remove the files."""
    from bench.plan_inputs import objects365_index, openimages_csv
    from pipeline.paths import default_taxonomy_dir
    from pipeline.taxonomy.load import load_dataset_file

    name, split = DATASETS[dataset]
    tax, _ = load_dataset_file(default_taxonomy_dir() / f"{name}.yaml")
    root = tmp / f"{dataset}-{fraction}"
    index = root / tax.splits[split].index
    if dataset == "objects365":
        counts = objects365_index(index, fraction, [(c.raw_id, c.name) for c in tax.classes])
    else:
        counts = openimages_csv(index, fraction, [c.raw_id for c in tax.classes])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_plan", "--child", dataset, str(root), str(tmp / "plan"),
             *(["--subset", str(subset)] if subset else [])],
            capture_output=True, text=True, env=env, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"planning {dataset} at {fraction:.0%} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        for p in sorted(root.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        root.rmdir()
        plan_dir = tmp / "plan"
        if plan_dir.exists():
            for p in plan_dir.iterdir():
                p.unlink()
            plan_dir.rmdir()
    return {"dataset": dataset, "fraction": f"{fraction:.0%}", "index MB": round(counts["bytes"] / 1e6),
            "images": result["items"], "boxes/masks": counts["boxes"],
            "seconds": round(result["seconds"], 1), "cpu s": round(result["cpu_seconds"], 1),
            "peak RSS GiB": round(result["peak_rss"] / GIB, 3), "held after GiB": round(result["held_rss"] / GIB, 3),
            "task args B": result["plan_bytes"], "_f": fraction, "_peak": result["peak_rss"], "_s": result["seconds"],
            "_cpu": result["cpu_seconds"]}


def extrapolate(rows: list[dict]) -> dict:
    """Least-squares line through (fraction, value) for peak RSS and seconds, read at 100%."""
    import numpy as np

    f = np.array([r["_f"] for r in rows])
    out = {"dataset": rows[0]["dataset"], "fraction": "100% (extrapolated)"}
    for key, label, unit in (("_peak", "peak RSS GiB", GIB), ("_s", "seconds", 1), ("_cpu", "cpu s", 1)):
        slope, icpt = np.polyfit(f, np.array([r[key] for r in rows], dtype=float), 1)
        out[label] = round((slope + icpt) / unit, 3 if unit == GIB else 1)
    out["target"] = "< 4 GiB, < 600 s on one core"
    return out


def run(fractions=FRACTIONS) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        for dataset in DATASETS:
            measured = [measure(dataset, f, Path(tmp)) for f in fractions]
            rows += measured
            if len(measured) > 1:
                rows.append(extrapolate(measured))
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, metavar=("DATASET", "ROOT", "PLAN_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, action="append", help="size(s) to measure (default 1/3/10%%)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append")
    parser.add_argument("--tmp", default=None, help="work folder for the generated index")
    parser.add_argument("--subset", type=float, default=None, help="plan only this seeded share of each split")
    args = parser.parse_args()
    if args.child:
        _child(*args.child, subset=args.subset)
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench-plan-") as tmp:
        for dataset in args.dataset or list(DATASETS):
            for fraction in args.fraction or FRACTIONS:
                row = measure(dataset, fraction, Path(tmp), args.subset)
                rows.append({k: v for k, v in row.items() if not k.startswith("_")})
                print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
