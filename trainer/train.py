"""The training loop: mixed stream -> network -> the three losses, AdamW or SGD with polynomial decay.

One process (GPU or CPU) as is; several through torchrun (WORLD_SIZE set: DDP) or Ray Train
(`run_with_ray`), which sets up the process group itself.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import storage
from pipeline.errors import BadInput
from pipeline.safe_write import remove_stale_temps, write_text_atomic
from pipeline.shards.read import find_shards
from trainer.cluster import (
    absolute_paths,
    agree_on_resume,
    check_each_sample_once,
    check_out_dir,
    shared_store_warning,
    silent_ranks_error,
    start_process_group,
    timed_out,
)
from trainer.config import TrainConfig
from trainer.data.augment import AugmentParams
from trainer.data.stream import Source, StreamSpec, make_loader
from trainer.model.checkpoint import RunCheckpoint, TrainingState
from trainer.model.label_space import LabelSpace, classes_present
from trainer.model.normalise import normalise_images
from trainer.run_log import RunLog


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


def build_sources(cfg: TrainConfig, space: LabelSpace) -> list[Source]:
    return [Source(d.name, find_shards(cfg.shards, d.name, d.split), d.ratio, space.columns[d.name],
                   d.supervision, space.held_out_classes(d.name), kept_fraction(cfg, d), d.subsample_seed,
                   cfg.box_targets == "image")
            for d in cfg.datasets]


def kept_fraction(cfg: TrainConfig, entry) -> float:
    """The share of a dataset's split the run trains on (its `max_samples` or `fraction`, else all)."""
    from trainer.data.subsample import fraction_for, split_size

    size = split_size(cfg.shards, entry.name, entry.split) if entry.max_samples is not None else None
    return fraction_for(entry.fraction, entry.max_samples, size)


def with_epochs(cfg: TrainConfig, world: int) -> TrainConfig:
    """`epochs:` as passes over the data: epoch_samples = the kept samples of every listed split (their
    manifests' counts), steps = epochs x epoch_samples / (batch x accumulation x processes). Unchanged
    without `epochs:`."""
    if cfg.epochs is None:
        return cfg
    from trainer.data.subsample import split_size

    per_pass = 0
    for d in cfg.datasets:
        size = split_size(cfg.shards, d.name, d.split)
        per_pass += math.ceil(size * kept_fraction(cfg, d))
    steps = math.ceil(cfg.epochs * per_pass / (cfg.batch_size * cfg.accumulate * world))
    return cfg.model_copy(update={"epoch_samples": per_pass, "steps": steps})


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


def start_processes(cfg: TrainConfig):
    """(rank, world, device) of this process; starts the process group when torchrun set WORLD_SIZE
    (Ray Train starts it itself)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = torch.device(pick_device(cfg.device, local_rank, gpus, local_processes))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized() and world > 1:
        warning = shared_store_warning(os.environ)
        if warning and local_rank == 0:  # once per node: the variable is read by each node's torchrun
            print(warning, file=sys.stderr, flush=True)
        start_process_group("nccl" if device.type == "cuda" else "gloo", cfg.dist_timeout_s)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), device
    return 0, 1, device


def pick_device(choice: str, local_rank: int, gpus: int, local_processes: int) -> str:
    """This process's device: its own GPU (LOCAL_RANK-th) unless `device: cpu` or there is none.
    Two processes never share a GPU silently: one whose LOCAL_RANK has no GPU stops."""
    if choice == "cpu" or gpus == 0:
        return "cpu"
    if local_rank >= gpus:
        raise BadInput(f"{local_processes} processes on this node, {gpus} GPU{'s' if gpus != 1 else ''}: the process "
                       f"with LOCAL_RANK={local_rank} has no GPU of its own; start at most {gpus} per node "
                       f"(torchrun --nproc-per-node {gpus}), or set `device: cpu` in the config")
    return f"cuda:{local_rank}"


@dataclass
class LoopPosition:
    """Where the loop is: what a checkpoint saves and --resume restores, besides the weights."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already taken (the stream skips them on resume)
    samples_read: int = 0  # raw samples read and skipped as unreadable, all ranks
    samples_skipped: int = 0


def save_run_checkpoint(cfg: TrainConfig, model, optimizer, scheduler, space: LabelSpace,
                        pos: LoopPosition) -> storage.Location:
    """checkpoints/step-NNNNNNN.pt in the run folder; in object storage it is written to a local temp and
    uploaded whole (pipeline/safe_write.py), so --resume never finds half of one under its name."""
    import torch

    training = TrainingState(optimizer.state_dict(), scheduler.state_dict(), pos.epoch, pos.batch_in_epoch,
                             torch.get_rng_state(), pos.samples_read, pos.samples_skipped)
    ckpt = RunCheckpoint(model.net.state_dict(), model.criterion.state_dict(), json.loads(cfg.model_dump_json()),
                         space, pos.step, training)
    return ckpt.save(storage.join(cfg.run_dir, "checkpoints", f"step-{pos.step:07d}.pt"))


def restore(resume: str | Path, model, optimizer, scheduler) -> LoopPosition:
    """Weights, optimizer, schedule and random state of a checkpoint; the position to go on from."""
    import torch

    ckpt = RunCheckpoint.load(resume)
    if ckpt.training is None:
        raise BadInput(f"{resume}: holds a network only (an imported release?), nothing to resume; "
                       "start a new run from it with `init:`")
    t = ckpt.training
    model.net.load_state_dict(ckpt.network)
    model.criterion.load_state_dict(ckpt.criterion)
    optimizer.load_state_dict(t.optimizer)
    scheduler.load_state_dict(t.scheduler)
    torch.set_rng_state(t.torch_rng)
    return LoopPosition(ckpt.step, t.epoch, t.batch_in_epoch, t.samples_read, t.samples_skipped)


def build_trainee(cfg: TrainConfig, space: LabelSpace, device, world: int, init: bool, announce: bool):
    """The network (from `init:` when asked) and the loss in one module, on `device`."""
    from trainer.losses import SentenceLoss, default_chunk
    from trainer.model.networks import build_model, convert_sync_batch_norm, has_batch_norm

    dim = int(space.vectors.shape[1])
    weights = cfg.backbone_weights  # None: `weights: random` (or a model without a pretrained backbone)
    net = build_model(cfg.model, dim, str(weights) if weights else None, cfg.width)
    if init:
        from trainer.model.init_from import load_init

        loaded = load_init(net, cfg.init, cfg.model, dim, space.encoder)
        if announce:
            print(f"[ssiw] network from {loaded['source']} (step {loaded['step']}){loaded['note']}")
    if world > 1 and cfg.sync_bn and has_batch_norm(net):
        # 2 images per GPU give batch norm useless statistics; the paper's model syncs them.
        net = convert_sync_batch_norm(net, device.type)
    criterion = SentenceLoss(space.vectors, dim, cfg.box_dim, cfg.tau, cfg.ld_quantile, cfg.roi_size,
                             cfg.loss_weights, cfg.loss_chunk_pixels or default_chunk(device))
    return _trainee_class()(net, criterion).to(device)


def build_scheduler(optimizer, cfg: TrainConfig):
    """Linear warm-up, then polynomial decay to zero at cfg.steps."""
    import torch

    def poly(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        return warm * max(0.0, 1 - step / cfg.steps) ** cfg.poly_power

    return torch.optim.lr_scheduler.LambdaLR(optimizer, poly)


def start_run_folder(cfg: TrainConfig, sources: list[Source], space: LabelSpace) -> None:
    """Rank 0: the config beside the checkpoints, no half-saved checkpoint left, notes for the log."""
    write_text_atomic(storage.join(cfg.run_dir, "config.json"), cfg.model_dump_json(indent=2))
    # A checkpoint being saved when the run was killed (for s3://, a temp object uploaded but not yet copied).
    remove_stale_temps(storage.join(cfg.run_dir, "checkpoints"))
    for note in box_target_notes(sources, _record_supervision):
        print(note, flush=True)
    if space.held_out:
        print(f"[ssiw] held out of training: {', '.join(space.held_out)}", flush=True)


def mean_losses(accum: list[dict]) -> dict[str, float]:
    """Each loss averaged over the micro-batches of one optimizer step (those that had it)."""
    return {k: float(np.mean([a[k] for a in accum if k in a])) for k in ("total", "hd", "ld", "wd")
            if any(k in a for a in accum)}


class LabelColumns:
    """Per dataset, the softmax columns of its class indices (and with softmax_over: own, the mask of
    its own columns), on the device, looked up per batch."""

    def __init__(self, space: LabelSpace, device, own_only: bool):
        import torch

        self.device = device
        self.columns = {n: torch.from_numpy(space.columns[n]).to(device) for n in space.datasets}
        self.masks = {n: torch.from_numpy(space.column_mask(n)) for n in space.datasets} if own_only else None

    def for_batch(self, datasets: list[str]):
        import torch

        mask = torch.stack([self.masks[n] for n in datasets]).to(self.device) if self.masks is not None else None
        return [self.columns[n] for n in datasets], mask


def micro_batch(ddp, batch: dict, labels: LabelColumns, cfg: TrainConfig, device, last_of_step: bool,
                world: int) -> dict[str, float]:
    """Forward and backward of one micro-batch, its gradient scaled for accumulation; processes sync
    gradients only on the last micro-batch of an optimizer step. Returns its losses."""
    import torch

    images = normalise_images(batch["image"], device)
    cols, mask = labels.for_batch(batch["datasets"])
    with ddp.no_sync() if (world > 1 and not last_of_step) else nullcontext():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            losses = ddp(images, batch, cols, mask)
        (losses["total"] / cfg.accumulate).backward()
    return {k: float(v.detach()) for k, v in losses.items()}


def run_training(cfg: TrainConfig, table=None, resume: str | Path | None = None, progress: bool = True) -> dict:
    """Train to cfg.steps optimizer steps; returns a summary (run folder, last losses)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    rank, world, device = start_processes(cfg)
    check_out_dir(cfg.out_dir)
    resume = agree_on_resume(resume, cfg.run_dir, rank, world)  # rank 0's choice, or every rank stops
    torch.manual_seed(cfg.seed)
    cfg = with_epochs(cfg, world)
    table = table if table is not None else load_embedding_table(cfg.table)
    space = build_label_space(cfg, table)
    sources = build_sources(cfg, space)
    check_each_sample_once(sources, world, cfg.workers, cfg.resampled)
    model = build_trainee(cfg, space, device, world, bool(cfg.init and not resume), rank == 0 and progress)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    pos = restore(resume, model, optimizer, scheduler) if resume else LoopPosition()
    if resume and rank == 0:
        print(f"[ssiw] resuming from {resume} at step {pos.step} of {cfg.steps}, {world} "
              f"process{'es' if world > 1 else ''}", flush=True)
    ddp = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    if rank == 0:
        start_run_folder(cfg, sources, space)
    log = RunLog(cfg.run_dir, rank, pos.step, cfg.steps, cfg.log_every, cfg.name, progress, cfg.log_upload_every_s)
    labels = LabelColumns(space, device, cfg.softmax_over == "own")
    batches_per_epoch = math.ceil(cfg.epoch_samples / (cfg.batch_size * world))
    aug = AugmentParams.from_config(cfg)
    last: dict[str, float] = {}
    history: list[dict] = []
    accum: list[dict] = []  # losses of the micro-batches since the last optimizer step
    read, skipped = 0, 0  # raw samples this rank read and skipped since the last optimizer step
    model.train()
    try:
        while pos.step < cfg.steps:
            spec = StreamSpec(sources, cfg.batch_size, batches_per_epoch, aug, cfg.seed, pos.epoch, rank, world,
                              pos.batch_in_epoch, cfg.resampled, cfg.shuffle_buffer)
            t0 = time.perf_counter()
            for batch in make_loader(spec, cfg.workers, pin_memory=device.type == "cuda"):
                pos.batch_in_epoch += 1
                log.skipped(pos.step + 1, batch["skipped"])
                read, skipped = read + batch["read"], skipped + len(batch["skipped"])
                last_of_step = len(accum) + 1 == cfg.accumulate
                accum.append(micro_batch(ddp, batch, labels, cfg, device, last_of_step, world))
                if not last_of_step:
                    continue
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                pos.step += 1
                pos.samples_read, pos.samples_skipped = _add_counts(pos.samples_read, pos.samples_skipped,
                                                                    read, skipped, world)
                read, skipped = 0, 0
                _check_bad_limit(pos.samples_read, pos.samples_skipped, cfg.max_bad_fraction, cfg.run_dir)
                elapsed, t0 = time.perf_counter() - t0, time.perf_counter()
                last = {**mean_losses(accum), "step": pos.step, "tau": float(model.criterion.log_tau.detach().exp()),
                        "lr": scheduler.get_last_lr()[0], "skipped": pos.samples_skipped,
                        "samples_per_s": cfg.batch_size * cfg.accumulate * world / max(elapsed, 1e-9)}
                history.append(last)
                accum = []
                log.step(last, pos.samples_read, pos.samples_skipped)
                if rank == 0 and (pos.step % cfg.checkpoint_every == 0 or pos.step == cfg.steps):
                    log.flush()  # every row this checkpoint covers is on disk before it is
                    save_run_checkpoint(cfg, model, optimizer, scheduler, space, pos)
                if pos.step >= cfg.steps:
                    break
            else:
                pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0  # the epoch's stream ran out
    except RuntimeError as e:  # torch's DistBackendError is one: name the rank that went silent
        if world > 1 and timed_out(e):
            raise silent_ranks_error(e, rank, world, pos.step, cfg.dist_timeout_s) from e
        raise
    finally:
        log.close()
    if world > 1:
        dist.barrier()
    return {"run_dir": str(cfg.run_dir), "step": pos.step, "last": last, "history": history, "rank": rank,
            "model": model, "samples_read": pos.samples_read, "samples_skipped": pos.samples_skipped}


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


def _check_bad_limit(read: int, skipped: int, fraction: float, run_dir: storage.Location) -> None:
    if skipped > max(1.0, fraction * read):
        raise BadSampleLimit(
            f"{skipped} of {read} samples read were unreadable ({skipped / max(read, 1):.2%}), over the limit "
            f"max_bad_fraction={fraction}; see {run_dir}/skipped-rank*.jsonl for each shard, key and reason")


def run_with_ray(cfg: TrainConfig, num_workers: int, use_gpu: bool, resume: str | None = None) -> dict:
    """Ray Train: TorchTrainer starts the process group on each worker; the loop is the same. The
    caller connects Ray first (pipeline/ray_session.py), so TorchTrainer never joins a cluster on its own."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config_json = absolute_paths(cfg).model_dump_json()  # Ray Train workers run in a folder of Ray's
    # For a run folder or shards in object storage, the driver's AWS_* settings (endpoint, credentials,
    # region) go to the workers, as convert's tasks get them: nodes need no AWS configuration of their own.
    remote = storage.is_remote(cfg.out_dir) or storage.is_remote(cfg.shards)
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")} if remote else {}

    def loop(_: dict) -> None:
        os.environ.update(aws)
        run_training(TrainConfig.model_validate_json(config_json), resume=resume, progress=False)

    trainer = TorchTrainer(
        loop,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(name=cfg.name, storage_path=_ray_storage(cfg.out_dir)),
    )
    result = trainer.fit()
    return {"run_dir": str(cfg.run_dir), "ray_result": str(result.path)}


def _ray_storage(out_dir: storage.Location) -> str:
    """Where Ray Train keeps its own records: out_dir/ray (Ray reads s3:// itself, with the same AWS_* variables)."""
    base = out_dir if storage.is_remote(out_dir) else Path(out_dir).resolve()
    return str(storage.join(base, "ray"))
