"""GPU measurement: SegFormer-B5 training step time (batch 2, 640x640, random weights, bf16), and
whether the shard stream keeps the GPU busy (step time fed by the stream vs. by tensors already
on the GPU).  `python -m bench.gpu_bench [--steps N] [--workers W] [--json PATH]`
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from pipeline.safe_write import write_text_atomic


def _step_fn(model, criterion, optimizer, device, labels: int):
    import torch

    from trainer.normalise import normalise_images

    columns = [torch.arange(labels, device=device)] * 2

    def step(batch):
        images = normalise_images(batch["image"], device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            losses = criterion(model(images), batch, columns, None)
        losses["total"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return losses["total"]

    return step


def run(steps: int = 20, workers: int | None = None, batch: int = 2, crop: int = 640, dim: int = 384,
        labels: int = 19, images: int = 24) -> dict:
    import torch

    from tests.support.synthetic import photo_like_images, write_dense_shard
    from trainer.augment import AugmentParams
    from trainer.losses import SentenceLoss
    from trainer.models import build_model
    from trainer.stream import Source, StreamSpec, make_loader

    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_bench needs a CUDA GPU")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    workers = workers if workers is not None else max(1, min(8, (os.cpu_count() or 2) - 2))
    model = build_model("segformer-b5", dim).to(device).train()
    vectors = torch.nn.functional.normalize(torch.randn(labels, dim), dim=1)
    criterion = SentenceLoss(vectors, dim).to(device)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(criterion.parameters()), lr=6e-5)
    step = _step_fn(model, criterion, optimizer, device, labels)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        items = photo_like_images(folder, images)
        (folder / "bench").mkdir()
        write_dense_shard(folder / "bench" / "training-000000.tar", items, "bench")
        spec = StreamSpec([Source("bench", [str(folder / "bench" / "training-000000.tar")])], batch,
                          batches=steps * 2 + 10, augment=AugmentParams(crop=(crop, crop)), shuffle_buffer=8)
        loader = iter(make_loader(spec, workers, pin_memory=True))
        fixed = next(loader)
        on_gpu = {**fixed, "image": fixed["image"].to(device), "target": fixed["target"].to(device)}

        for _ in range(3):  # warm-up: cudnn autotune, allocator
            step(on_gpu)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(on_gpu)
        torch.cuda.synchronize()
        compute = (time.perf_counter() - t0) / steps

        for _ in range(3):
            step(next(loader))
        torch.cuda.synchronize()
        wait = 0.0
        t0 = time.perf_counter()
        for _ in range(steps):
            tw = time.perf_counter()
            b = next(loader)
            wait += time.perf_counter() - tw
            step(b)
        torch.cuda.synchronize()
        fed = (time.perf_counter() - t0) / steps
    return {
        "gpu": torch.cuda.get_device_name(0), "model": "segformer-b5", "batch": batch, "crop": crop,
        "loader_workers": workers, "step_s_tensors_on_gpu": round(compute, 4), "step_s_fed_by_stream": round(fed, 4),
        "data_wait_s_per_step": round(wait / steps, 4), "gpu_busy_fraction": round(min(1.0, compute / fed), 3),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.steps, args.workers)
    print(json.dumps(result, indent=2))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
