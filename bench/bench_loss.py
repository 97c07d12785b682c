"""The loss at the full label space on CPU: forward + backward of L_HD at batch 2, 640x640 crops,
C = 512 embedding channels at 1/4 resolution, K = 725 labels. Two ways to get crop-sized scores:

- full: upsample all K score maps at once (the trainer's path before; kept as full_pixel_losses)
- chunked: upsample and score a band of rows at a time, recomputed in backward (the trainer's path)

Each runs in its own process, so peak resident memory (VmHWM) is that path's alone; the table gives
it above the process's resident memory just before the loss, and the median time of the runs.
`python -m bench loss`; one path: `python -m bench.bench_loss --path chunked --repeats 3`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

BATCH, CROP, DIM, LABELS = 2, 640, 512, 725


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(path: str, repeats: int) -> dict:
    import torch

    from trainer.losses import SentenceLoss

    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(LABELS, DIM), dim=1)
    crit = SentenceLoss(vectors, DIM, chunk=None if path == "full" else 4_000_000)
    emb = torch.randn(BATCH, DIM, CROP // 4, CROP // 4, requires_grad=True)
    batch = {"target": torch.randint(-1, LABELS, (BATCH, CROP, CROP)), "supervision": torch.zeros(BATCH, dtype=torch.long),
             "keys": ["a", "b"], "datasets": ["d", "d"], "boxes": [torch.zeros(0, 4)] * BATCH,
             "box_classes": [torch.zeros(0, dtype=torch.long)] * BATCH, "box_targets": [None] * BATCH}
    columns = [torch.arange(LABELS)] * BATCH
    before = _rss_kib("VmRSS")
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = crit(emb, batch, columns, None)
        out["total"].backward()
        times.append(time.perf_counter() - t0)
        value = float(out["total"].detach())
        emb.grad = None
        del out
    peak = _rss_kib("VmHWM")
    return {"path": path, "seconds": statistics.median(times), "peak_mib_over_inputs": (peak - before) / 1024,
            "loss": value, "threads": torch.get_num_threads()}


def run(repeats: int = 2) -> list[dict]:
    rows = []
    for path in ("full", "chunked"):
        proc = subprocess.run([sys.executable, "-m", "bench.bench_loss", "--path", path, "--repeats", str(repeats)],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"path": path, "batch x crop": f"{BATCH} x {CROP}x{CROP}", "C": DIM, "K": LABELS,
                     "fwd+bwd s (median)": round(r["seconds"], 2),
                     "peak MiB over inputs": round(r["peak_mib_over_inputs"]), "loss": round(r["loss"], 5)})
    full, chunked = rows
    chunked["memory vs full"] = f"{chunked['peak MiB over inputs'] / max(full['peak MiB over inputs'], 1):.2f}x"
    chunked["time vs full"] = f"{chunked['fwd+bwd s (median)'] / max(full['fwd+bwd s (median)'], 1e-9):.2f}x"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("full", "chunked"), required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.path, args.repeats)))


if __name__ == "__main__":
    main()
