"""The training loop: mixed stream -> network -> the three losses, AdamW or SGD with polynomial decay.

One process (GPU or CPU) as is; several through torchrun (WORLD_SIZE set: DDP) or Ray Train
(`run_with_ray`), which sets up the process group itself.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput
from pipeline.safe_write import remove_stale_temps, write_text_atomic
from trainer.cluster import absolute_paths, agree_on_resume, check_each_sample_once, start_process_group
from trainer.config import TrainConfig
from trainer.data.augment import AugmentParams
from trainer.data.stream import Source, StreamSpec, find_shards, make_loader
from trainer.model.checkpoint import load_checkpoint, save_checkpoint
from trainer.model.label_space import LabelSpace, classes_present
from trainer.model.normalise import normalise_images

LOSS_FIELDS = ["step", "total", "hd", "ld", "wd", "tau", "lr", "samples_per_s", "skipped"]


def _trainee_class():
    from torch import nn

    class Trainee(nn.Module):
        """Network and loss in one module, so DDP syncs the temperature and box head too."""

        def __init__(self, net, criterion):
            super().__init__()
            self.net, self.criterion = net, criterion

        def forward(self, images, batch, columns, mask):
            return self.criterion(self.net(images), batch, columns, mask)

    return Trainee


def load_embedding_table(path):
    if path is None:
        raise BadInput("the config has no `table:` (embedding table path)")
    from pipeline.embed.table import load_table

    return load_table(path)


def _distributed(timeout_s: float = 600):
    """(rank, world, local_rank), starting the process group when torchrun set WORLD_SIZE."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        start_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout_s)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def build_sources(cfg: TrainConfig, space: LabelSpace) -> list[Source]:
    return [Source(d.name, find_shards(cfg.shards, d.name, d.split), d.ratio, space.columns[d.name],
                   d.supervision, space.held_out_classes(d.name))
            for d in cfg.datasets]


def build_label_space(cfg: TrainConfig, table) -> LabelSpace:
    """The training label space, with cfg.held_out_labels left out; a held-out key that names no
    registry label and no table label is a typo, and an error (it would hold out nothing)."""
    held = list(cfg.held_out_labels)
    if held:
        known = set(getattr(table, "labels", []))
        unknown = [k for k in held if k not in known]
        if unknown:
            from pipeline.taxonomy.load import load_taxonomy_set

            registry = load_taxonomy_set(cfg.taxonomies).registry.labels
            unknown = [k for k in unknown if k not in registry]
        if unknown:
            raise BadInput(f"held_out_labels: {unknown} are neither registry labels nor in the embedding table")
    # Only classes that occur in the shards enter the softmax (the manifests say which).
    present = {d.name: classes_present(cfg.shards, d.name, d.split) for d in cfg.datasets}
    return LabelSpace.from_table(table, [d.name for d in cfg.datasets], held, cfg.taxonomies,
                                 {n: c for n, c in present.items() if c is not None})


def param_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only: the learnable temperature, norm scales and
    biases (every parameter with fewer than two dimensions) would otherwise drift with no gradient."""
    decay, plain = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else plain).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model, cfg: TrainConfig):
    import torch

    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def box_target_notes(sources: list[Source], supervision_of) -> list[str]:
    """One line per box dataset whose first sample carries no image embedding (KEY.boxemb.npy)."""
    from pipeline.shards.read import tar_samples

    notes = []
    for src in sources:
        first = next(iter(tar_samples(src.urls[0], lambda skipped: None)), None)
        if first is None or supervision_of(first) != "box" or "boxemb.npy" in first:
            continue
        notes.append(f"[ssiw] {src.name}: boxes carry no image embedding (KEY.boxemb.npy), so L_WD distils "
                     "towards each box class's text embedding, not the paper's CLIP image-embedding target "
                     "(convert with --box-embeddings for that)")
    return notes


def _record_supervision(raw: dict) -> str | None:
    try:
        return json.loads(raw["json"]).get("supervision")
    except (KeyError, ValueError, AttributeError):
        return None


class BadSampleLimit(BadInput):
    """Too many unreadable samples: the data, not one sample, is broken."""


def run_training(cfg: TrainConfig, table=None, resume: str | Path | None = None, progress: bool = True) -> dict:
    """Train to cfg.steps optimizer steps; returns a summary (run folder, last losses)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from trainer.losses import SentenceLoss
    from trainer.model.networks import build_model, convert_sync_batch_norm, has_batch_norm

    rank, world, local_rank = _distributed(cfg.dist_timeout_s)
    resume = agree_on_resume(resume, cfg.run_dir, rank, world)  # rank 0's choice, or every rank stops
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    table = table if table is not None else load_embedding_table(cfg.table)
    space = build_label_space(cfg, table)
    sources = build_sources(cfg, space)
    check_each_sample_once(sources, world, cfg.workers, cfg.resampled)

    net = build_model(cfg.model, int(space.vectors.shape[1]), str(cfg.weights) if cfg.weights else None, cfg.width)
    if cfg.init and not resume:
        from trainer.model.init_from import load_init

        loaded = load_init(net, cfg.init, cfg.model, int(space.vectors.shape[1]), space.encoder)
        if rank == 0 and progress:
            print(f"[ssiw] network from {loaded['source']} (step {loaded['step']}){loaded['note']}")
    if world > 1 and cfg.sync_bn and has_batch_norm(net):
        # 2 images per GPU give batch norm useless statistics; the paper's model syncs them.
        net = convert_sync_batch_norm(net, device.type)
    criterion = SentenceLoss(space.vectors, space.vectors.shape[1], cfg.box_dim, cfg.tau, cfg.ld_quantile,
                             cfg.roi_size, cfg.loss_weights, cfg.loss_chunk_pixels)
    model = _trainee_class()(net, criterion).to(device)
    optimizer = build_optimizer(model, cfg)

    def poly(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        return warm * max(0.0, 1 - step / cfg.steps) ** cfg.poly_power

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly)
    step, epoch, batch_in_epoch = 0, 0, 0
    read_total, skipped_total = 0, 0  # raw samples read and skipped as unreadable, all ranks
    if resume:
        state = load_checkpoint(resume)
        model.net.load_state_dict(state["model"])
        model.criterion.load_state_dict(state["criterion"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        read_total, skipped_total = state.get("samples_read", 0), state.get("samples_skipped", 0)
        torch.set_rng_state(state["torch_rng"])
    ddp = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model

    run_dir = cfg.run_dir
    writer = csv_file = None
    if rank == 0:
        write_text_atomic(run_dir / "config.json", cfg.model_dump_json(indent=2))
        remove_stale_temps(run_dir / "checkpoints")  # a checkpoint being saved when the run was killed
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
        new = not (run_dir / "losses.csv").exists()
        csv_file = open(run_dir / "losses.csv", "a", newline="")  # noqa: SIM115 -- appended to every step, closed at the end
        csv_writer = csv.DictWriter(csv_file, fieldnames=LOSS_FIELDS)
        if new:
            csv_writer.writeheader()
        for note in box_target_notes([src for src in sources], _record_supervision):
            print(note, flush=True)
        if space.held_out:
            print(f"[ssiw] held out of training: {', '.join(space.held_out)}", flush=True)
    skip_log = None  # skipped-rank<r>.jsonl, opened at the first unreadable sample

    batches_per_epoch = math.ceil(cfg.epoch_samples / (cfg.batch_size * world))
    aug = AugmentParams(short_edge=cfg.short_edge, scale=tuple(cfg.scale), crop=tuple(cfg.crop), flip=cfg.flip,
                        jitter=cfg.jitter, blur_prob=cfg.blur_prob, box_min_visible=cfg.box_min_visible,
                        corruption_prob=cfg.corruption.prob, corruption_kinds=tuple(cfg.corruption.kinds),
                        corruption_severity=tuple(cfg.corruption.severity))
    use_amp = cfg.amp and device.type == "cuda"
    own = cfg.softmax_over == "own"
    masks = {n: torch.from_numpy(space.column_mask(n)) for n in space.datasets}
    columns = {n: torch.from_numpy(space.columns[n]).to(device) for n in space.datasets}

    bar = None
    if rank == 0 and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=cfg.name, unit="step", dynamic_ncols=True)
    last: dict[str, float] = {}
    history: list[dict] = []
    model.train()
    accum: list[dict] = []  # losses of the micro-batches since the last optimizer step
    step_read, step_skipped = 0, 0  # this rank's, since the last optimizer step
    while step < cfg.steps:
        spec = StreamSpec(sources, cfg.batch_size, batches_per_epoch, aug, cfg.seed, epoch, rank, world,
                          batch_in_epoch, cfg.resampled, cfg.shuffle_buffer)
        loader = make_loader(spec, cfg.workers, pin_memory=device.type == "cuda")
        t0 = time.perf_counter()
        for batch in loader:
            batch_in_epoch += 1
            step_read, step_skipped = step_read + batch["read"], step_skipped + len(batch["skipped"])
            for item in batch["skipped"]:
                line = json.dumps({"step": step + 1, "rank": rank, **item})
                print(f"[ssiw] skipped unreadable sample: {line}", file=sys.stderr, flush=True)
                if skip_log is None:
                    run_dir.mkdir(parents=True, exist_ok=True)
                    # an append-only log kept open for the run (closed after the loop), like losses.csv
                    skip_log = open(run_dir / f"skipped-rank{rank}.jsonl", "a")  # noqa: SIM115
                skip_log.write(line + "\n")
                skip_log.flush()
            images = normalise_images(batch["image"], device)
            cols = [columns[n] for n in batch["datasets"]]
            mask = torch.stack([masks[n] for n in batch["datasets"]]).to(device) if own else None
            sync = len(accum) + 1 == cfg.accumulate
            ctx = ddp.no_sync() if (world > 1 and not sync) else _null()
            with ctx:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    losses = ddp(images, batch, cols, mask)
                (losses["total"] / cfg.accumulate).backward()
            accum.append({k: float(v.detach()) for k, v in losses.items()})
            if not sync:
                continue
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            read_total, skipped_total = _add_counts(read_total, skipped_total, step_read, step_skipped, world)
            step_read, step_skipped = 0, 0
            _check_bad_limit(read_total, skipped_total, cfg.max_bad_fraction, run_dir)
            elapsed = time.perf_counter() - t0
            t0 = time.perf_counter()
            last = {k: float(np.mean([a[k] for a in accum if k in a])) for k in ("total", "hd", "ld", "wd")
                    if any(k in a for a in accum)}
            last.update(step=step, tau=float(model.criterion.log_tau.detach().exp()), lr=scheduler.get_last_lr()[0],
                        samples_per_s=cfg.batch_size * cfg.accumulate * world / max(elapsed, 1e-9),
                        skipped=skipped_total)
            history.append(dict(last))
            accum = []
            if rank == 0:
                csv_writer.writerow({k: last.get(k, "") for k in LOSS_FIELDS})
                if step % cfg.log_every == 0 or step == cfg.steps:
                    csv_file.flush()
                    for k in ("total", "hd", "ld", "wd", "tau", "lr"):
                        if k in last:
                            writer.add_scalar(f"train/{k}", last[k], step)
                    writer.add_scalar("data/skipped_samples", skipped_total, step)
                    writer.add_scalar("data/skipped_fraction", skipped_total / max(read_total, 1), step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last['total']:.3f}", tau=f"{last['tau']:.3f}")
            if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                _save(run_dir, cfg, model, optimizer, scheduler, space, step, epoch, batch_in_epoch,
                      read_total, skipped_total)
            if step >= cfg.steps:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0  # the epoch's stream ran out
    if bar is not None:
        bar.close()
    if skip_log is not None:
        skip_log.close()
    if rank == 0:
        csv_file.close()
        writer.close()
    if world > 1:
        dist.barrier()
    return {"run_dir": str(run_dir), "step": step, "last": last, "history": history, "rank": rank, "model": model,
            "samples_read": read_total, "samples_skipped": skipped_total}


def _add_counts(read_total: int, skipped_total: int, read: int, skipped: int, world: int) -> tuple[int, int]:
    """Totals over every rank (one small all-reduce per step), so every rank applies the limit alike."""
    if world > 1:
        import torch
        import torch.distributed as dist

        t = torch.tensor([read, skipped], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        read, skipped = int(t[0]), int(t[1])
    return read_total + read, skipped_total + skipped


def _check_bad_limit(read: int, skipped: int, fraction: float, run_dir: Path) -> None:
    if skipped > max(1.0, fraction * read):
        raise BadSampleLimit(
            f"{skipped} of {read} samples read were unreadable ({skipped / max(read, 1):.2%}), over the limit "
            f"max_bad_fraction={fraction}; see {run_dir}/skipped-rank*.jsonl for each shard, key and reason")


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _save(run_dir: Path, cfg, model, optimizer, scheduler, space: LabelSpace, step, epoch, batch_in_epoch,
          samples_read: int = 0, samples_skipped: int = 0):
    import torch

    state = {
        "model": model.net.state_dict(), "criterion": model.criterion.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "torch_rng": torch.get_rng_state(),
        "samples_read": samples_read, "samples_skipped": samples_skipped,
        "config": json.loads(cfg.model_dump_json()),
        "label_space": space.to_dict(),
    }
    save_checkpoint(run_dir / "checkpoints" / f"step-{step:07d}.pt", state)


def run_with_ray(cfg: TrainConfig, num_workers: int, use_gpu: bool, resume: str | None = None) -> dict:
    """Ray Train: TorchTrainer starts the process group on each worker; the loop is the same. The
    caller connects Ray first (pipeline/ray_session.py), so TorchTrainer never joins a cluster on its own."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config_json = absolute_paths(cfg).model_dump_json()  # Ray Train workers run in a folder of Ray's

    def loop(_: dict) -> None:
        run_training(TrainConfig.model_validate_json(config_json), resume=resume, progress=False)

    trainer = TorchTrainer(
        loop,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(name=cfg.name, storage_path=str(cfg.out_dir.resolve() / "ray")),
    )
    result = trainer.fit()
    return {"run_dir": str(cfg.run_dir), "ray_result": str(result.path)}
