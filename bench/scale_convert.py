"""The docs/scale.md measurement: a full Ray conversion of N synthetic ADE-sized samples.

    python -m bench.scale_convert --n 20000 --workers 2 --shard-size 100MB

Not part of `make bench` (it takes minutes). Prints one JSON line: images, shards, seconds, img/s,
img/s per worker, and the peak RSS seen across Ray worker processes (sampled with psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from bench.convert_inputs import generate


def _watch_rss(stop: threading.Event, peak: list[int]) -> None:
    """Largest RSS of any Ray worker process, sampled every 0.2 s."""
    import psutil

    while not stop.is_set():
        for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                if "ray::" in (proc.info["name"] or "") + cmd or "default_worker.py" in cmd:
                    peak[0] = max(peak[0], proc.info["memory_info"].rss)
            except (psutil.Error, TypeError):
                continue
        stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--shard-size", default="100MB")
    parser.add_argument("--tmp", default=None, help="work folder (default: a temp dir, removed after)")
    args = parser.parse_args()

    import ray

    from pipeline.convert.plan import parse_size
    from pipeline.convert.readers import get_reader
    from pipeline.convert.runner import convert_split, ensure_ray
    from pipeline.paths import default_taxonomy_dir
    from pipeline.taxonomy.load import load_dataset_file

    tax, _ = load_dataset_file(default_taxonomy_dir() / "ade20k-150.yaml")
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="scale-") as tmp:
        root, out = Path(tmp) / "root", Path(tmp) / "shards"
        start = time.perf_counter()
        generate("ade20k", tax, root, "training", args.n, 683, 512, templates=256)
        generated = time.perf_counter() - start
        ensure_ray(None, args.workers)
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=_watch_rss, args=(stop, peak), daemon=True)
        watcher.start()
        try:
            result = convert_split(tax, get_reader("ade20k"), root, "training", out,
                                   shard_bytes=parse_size(args.shard_size), use_ray=True, workers=args.workers)
        finally:
            stop.set()
            watcher.join()
            ray.shutdown()
        shard_bytes = sum(p.stat().st_size for p in (out / tax.name).glob("*.tar"))
    print(json.dumps({
        "images": result.written, "quarantined": result.quarantined, "shards": result.shards,
        "workers": args.workers, "generate_s": round(generated, 1), "convert_s": round(result.seconds, 1),
        "img_per_s": round(result.written / result.seconds, 1),
        "img_per_s_per_worker": round(result.written / result.seconds / args.workers, 1),
        "shard_gb": round(shard_bytes / 1e9, 2), "peak_worker_rss_mib": round(peak[0] / 2**20),
    }))


if __name__ == "__main__":
    main()
