"""GPU measurement of a training step at the paper's scale: SegFormer-B5, batch 2, 640x640 crops from
1080p JPEGs, random weights, bf16, scored against the full training label space (every label of the
shipped training taxonomies). One row per loader-worker count.

Each row times the same step twice: on one batch already on the device (compute alone), then fed by
the shard stream (compute plus whatever data wait the loader workers could not hide). Their ratio is
the fraction of time the GPU is busy; `data_wait_s_per_step` is the time the training loop blocked
waiting for the next batch.

    python -m bench.gpu_bench --workers 4 8 [--steps 50] [--json gpu-bench.json]

`--device cpu` with a small `--model`, `--crop` and `--labels` runs the same path on CPU; the tests do
that so the script is known to work before a GPU is lent. Figures from it are not GPU figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

from pipeline.safe_write import write_text_atomic

SYNTHETIC_CLASSES = 19  # photo_like_images' label maps hold classes 0..18


def full_label_space() -> int:
    """Distinct registry labels over the shipped training taxonomies (ignored classes left out):
    the K of a model trained on the whole merged corpus."""
    from pipeline.taxonomy.load import load_taxonomy_set
    from pipeline.taxonomy.schema import Role

    taxonomies = load_taxonomy_set().datasets.values()
    return len({c.label for t in taxonomies if t.role == Role.train for c in t.classes if not c.ignore})


def _step_fn(model, criterion, optimizer, device, batch_size: int):
    """One optimizer step as trainer/train.py takes it (bf16 autocast on CUDA only)."""
    import torch

    from trainer.model.normalise import normalise_images

    columns = [torch.arange(SYNTHETIC_CLASSES, device=device)] * batch_size

    def step(batch):
        images = normalise_images(batch["image"], device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses = criterion(model(images), batch, columns, None)
        losses["total"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _timed(step, next_batch, n: int, device) -> tuple[float, float]:
    """n steps on batches from next_batch(): (seconds per step, seconds per step blocked in next_batch)."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    sync()
    wait = 0.0
    t0 = time.perf_counter()
    for _ in range(n):
        tw = time.perf_counter()
        batch = next_batch()
        wait += time.perf_counter() - tw
        step(batch)
    sync()
    return (time.perf_counter() - t0) / n, wait / n


def run(workers: list[int] | tuple[int, ...] = (4, 8), steps: int = 50, batch: int = 2, crop: int = 640,
        dim: int = 512, labels: int | None = None, model_name: str = "segformer-b5", device: str = "cuda",
        images: int = 24, short: int = 1080, warmup: int = 3) -> list[dict]:
    import torch

    from tests.support.synthetic import photo_like_images, write_dense_shard
    from trainer.data.augment import AugmentParams
    from trainer.data.stream import Source, StreamSpec, make_loader
    from trainer.losses import SentenceLoss, default_chunk
    from trainer.model.networks import build_model

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench.gpu_bench needs a CUDA GPU (--device cpu runs the same path on CPU, for checking it)")
    dev = torch.device(device)
    labels = labels or full_label_space()
    if labels < SYNTHETIC_CLASSES:
        raise SystemExit(f"--labels must be at least {SYNTHETIC_CLASSES}, the synthetic images' class count")
    torch.manual_seed(0)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = build_model(model_name, dim).to(dev).train()
    vectors = torch.nn.functional.normalize(torch.randn(labels, dim), dim=1)
    criterion = SentenceLoss(vectors, dim, chunk=default_chunk(dev)).to(dev)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(criterion.parameters()), lr=6e-5)
    step = _step_fn(model, criterion, optimizer, dev, batch)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        items = photo_like_images(folder, images, short=short)
        shard = write_dense_shard(folder / "training-000000.tar", items, "bench")
        for n_workers in workers:
            # the stream resamples shards per worker, so one shard feeds any number of workers
            spec = StreamSpec([Source("bench", [str(shard)])], batch, batches=1 + 2 * warmup + steps,
                              augment=AugmentParams(crop=(crop, crop)), shuffle_buffer=8)
            loader = iter(make_loader(spec, n_workers, pin_memory=dev.type == "cuda"))
            first = next(loader)
            on_device = {**first, "image": first["image"].to(dev), "target": first["target"].to(dev)}
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            same_batch = itertools.repeat(on_device).__next__
            _timed(step, same_batch, warmup, dev)  # cudnn autotune, allocator
            compute, _ = _timed(step, same_batch, steps, dev)
            _timed(step, loader.__next__, warmup, dev)
            fed, wait = _timed(step, loader.__next__, steps, dev)
            row = {
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                "model": model_name, "batch": batch, "crop": crop, "labels": labels, "loader_workers": n_workers,
                "step_s_on_device": round(compute, 4), "step_s_streamed": round(fed, 4),
                "data_wait_s_per_step": round(wait, 4), "gpu_busy_fraction": round(min(1.0, compute / fed), 3),
            }
            if dev.type == "cuda":
                row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 8], help="loader worker counts, one row each")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per measurement (the loader workers prefetch, so short runs flatter them)")
    parser.add_argument("--labels", type=int, default=None, help="K; default: the full training label space")
    parser.add_argument("--model", default="segformer-b5")
    parser.add_argument("--crop", type=int, default=640)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dim", type=int, default=512, help="embedding width C (CLIP ViT-B/32: 512)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--images", type=int, default=24, help="synthetic JPEGs in the shard")
    parser.add_argument("--short", type=int, default=1080, help="their short edge, px")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = run(args.workers, args.steps, args.batch, args.crop, args.dim, args.labels, args.model, args.device,
               args.images, args.short)
    from rich.console import Console

    from bench.__main__ import table

    Console(width=200).print(table("bench.gpu_bench", rows))
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
