"""Training on many machines: what every rank must agree on before the first step, and paths that mean the
same thing on every machine.

- `agree_on_resume`: `--resume auto` (or a checkpoint path) is resolved by every rank, gathered, and rank
  0's choice stands; a rank that sees something else (the run folder is not shared, so rank 1 finds no
  checkpoint while rank 0 resumes at step 60) stops every rank at start with an error naming both views,
  instead of ranks training from different steps until a collective hangs.
- `check_each_sample_once`: with `resampled: false` each shard is read by exactly one loader worker of one
  rank (webdataset's split_by_node, split_by_worker), so a dataset needs at least ranks x workers shards;
  fewer is refused at start with the numbers and the `--shard-size` that would fit.
- `start_process_group`: the process group with a timeout from the config (`dist_timeout_s`), so a rank
  whose peer went silent (a hung node, a cut network without a reset) stops within it, not after torch's
  30-minute default.
- `absolute_paths`: `ssiw train --ray` resolves a config's relative paths in the driver, since Ray Train
  workers run in a folder of Ray's own.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pipeline import storage
from pipeline.errors import BadInput


class RanksDisagree(BadInput):
    """The ranks of one run see different things (a run folder that is not shared, different configs)."""


def _local_choice(requested: str | Path | None, run_dir: Path) -> str | None:
    """What this rank would resume from: None, or a checkpoint file it can read."""
    from trainer.model.checkpoint import latest_checkpoint

    if requested is None:
        return None
    if str(requested) == "auto":
        found = latest_checkpoint(run_dir)
        return str(found) if found else None
    path = Path(requested)
    if path.is_dir():
        found = latest_checkpoint(path)
        return str(found) if found else f"{path} (a folder without checkpoints)"
    return str(path) if path.is_file() else f"{path} (not found)"


def agree_on_resume(requested: str | Path | None, run_dir: Path, rank: int, world: int) -> str | None:
    """The checkpoint every rank resumes from (None: a fresh start), as rank 0 sees it. Raises
    RanksDisagree on every rank when any rank sees otherwise."""
    mine = _local_choice(requested, run_dir)
    if world == 1:
        if mine is not None and not Path(mine).is_file():
            raise BadInput(f"--resume {requested}: {mine}")
        return mine
    import torch.distributed as dist

    views: list = [None] * world
    dist.all_gather_object(views, (socket.gethostname(), mine))
    chosen = views[0][1]
    differ = [r for r, (_, seen) in enumerate(views) if seen != chosen]
    if differ:
        shown = "; ".join(f"rank {r} on {host}: {seen or 'no checkpoint (a fresh start)'}"
                          for r, (host, seen) in enumerate(views) if r == 0 or r in differ)
        raise RanksDisagree(
            f"--resume {requested}: the ranks do not agree on where to start ({shown}). Every rank must see the "
            f"same run folder ({run_dir}): put out_dir on a filesystem every node mounts, or pass --resume "
            "with a checkpoint file every node can read."
        )
    if chosen is not None and not Path(chosen).is_file():
        raise BadInput(f"--resume {requested}: {chosen}")
    return chosen


def check_each_sample_once(sources, world: int, workers: int, resampled: bool) -> None:
    """With resampled: false, refuse at start a dataset with fewer shards than readers (ranks x loader
    workers): some reader would get no shard and stop the run mid-epoch."""
    if resampled:
        return
    readers = world * max(1, workers)
    short = [s for s in sources if len(s.urls) < readers]
    if not short:
        return
    lines = []
    for s in short:
        total = sum(storage.size(u) for u in s.urls)
        fits = total // readers
        lines.append(f"{s.name}: {len(s.urls)} shards ({total / 1e6:,.0f} MB) for {readers} readers; "
                     f"`ssiw convert --shard-size {max(1, fits // 10**6)}MB` would give {readers} or more")
    raise BadInput(
        f"resampled: false reads each shard with one loader worker of one rank, so every dataset needs at least "
        f"{world} ranks x {max(1, workers)} workers = {readers} shards: " + "; ".join(lines)
        + ". Or lower `workers:`, or use `resampled: true` (samples drawn with replacement)."
    )


def absolute_paths(cfg):
    """The config with every relative local path made absolute against this process's folder."""
    update = {}
    for name, value in cfg:
        if isinstance(value, Path) and not value.is_absolute():
            update[name] = Path(os.path.abspath(value))
        elif name == "shards" and isinstance(value, str) and not storage.is_remote(value) and not os.path.isabs(value):
            update[name] = os.path.abspath(value)
    return cfg.model_copy(update=update)


def start_process_group(backend: str, timeout_s: float) -> None:
    import datetime

    import torch.distributed as dist

    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
