"""Training on many machines: what every rank must agree on before the first step, and paths that mean the
same thing on every machine.

- `agree_on_resume`: `--resume auto` (or a checkpoint path) is resolved by every rank, gathered, and rank
  0's choice stands; a rank that sees something else (the run folder is not shared, so rank 1 finds no
  checkpoint while rank 0 resumes at step 60) stops every rank at start with an error naming both views,
  instead of ranks training from different steps until a collective hangs.
- `check_out_dir`: an `s3://` out_dir (the run folder in object storage) names a bucket this rank can see.
- `check_each_sample_once`: with `resampled: false` each shard is read by exactly one loader worker of one
  rank (webdataset's split_by_node, split_by_worker), so a dataset needs at least ranks x workers shards;
  fewer is refused at start with the numbers and the `--shard-size` that would fit.
- `start_process_group`: the process group with a timeout from the config (`dist_timeout_s`), so a rank
  whose peer went silent (a hung node, a cut network without a reset) stops within it, not after torch's
  30-minute default; `silent_ranks_error` then names the ranks that went silent (those that do not check in
  through the process group's store after the timeout).
- `absolute_paths`: `ssiw train --ray` resolves a config's relative paths in the driver, since Ray Train
  workers run in a folder of Ray's own.
- `shared_store_warning`: under torchrun with `--max-restarts`, says when torchrun's agent shares its
  rendezvous store with the run, which makes a restarted group hang or fail (pytorch/pytorch#167288).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from pipeline import storage
from pipeline.errors import BadInput, SsiwError


class RanksDisagree(BadInput):
    """The ranks of one run see different things (a run folder that is not shared, different configs)."""


def _local_choice(requested: str | Path | None, run_dir: storage.Location) -> str | None:
    """What this rank would resume from: None, or a checkpoint file (or s3:// object) it can read."""
    from trainer.model.checkpoint import latest_checkpoint

    if requested is None:
        return None
    if str(requested) == "auto":
        found = latest_checkpoint(run_dir)
        return str(found) if found else None
    path = storage.as_location(requested)
    if storage.is_file(path):
        return str(path)
    if storage.exists(path):  # a run folder (for s3://, a prefix holding objects)
        found = latest_checkpoint(path)
        return str(found) if found else f"{path} (a folder without checkpoints)"
    return f"{path} (not found)"


def agree_on_resume(requested: str | Path | None, run_dir: storage.Location, rank: int, world: int) -> str | None:
    """The checkpoint every rank resumes from (None: a fresh start), as rank 0 sees it. Raises
    RanksDisagree on every rank when any rank sees otherwise."""
    mine = _local_choice(requested, run_dir)
    if world == 1:
        if mine is not None and not storage.is_file(mine):
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
            f"same run folder ({run_dir}): put out_dir on a filesystem every node mounts or in object storage "
            "(out_dir: s3://bucket/prefix), or pass --resume with a checkpoint file every node can read."
        )
    if chosen is not None and not storage.is_file(chosen):
        raise BadInput(f"--resume {requested}: {chosen}")
    return chosen


def check_out_dir(out_dir: storage.Location) -> None:
    """An s3:// out_dir must name a bucket these credentials see: said at start, not at the first save."""
    if storage.is_remote(out_dir) and not storage.bucket_exists(out_dir):
        raise BadInput(f"out_dir: {out_dir}: no such bucket, or these credentials cannot see it "
                       "(AWS_* variables, ~/.aws)")


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


def shared_store_warning(env: Mapping[str, str]) -> str | None:
    """A warning when torchrun may restart this process group (`--max-restarts` above 0) while its agent
    shares one rendezvous store with the run (TORCHELASTIC_USE_AGENT_STORE=True, torch's default). That
    store outlives each attempt and keeps the keys of the one before, so a restarted group can read its
    peers' old addresses and hang in init_process_group, past dist_timeout_s, or fail (pytorch/pytorch#167288;
    8 runs of 10 here, docs/cluster.md). TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in every node's environment gives
    each attempt a store of its own with the c10d rendezvous; the static one (--master-addr) always shares it."""
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    try:
        restarts = int(env.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    except ValueError:
        return None
    if restarts <= 0:
        return None
    return (f"[ssiw] warning: torchrun may restart this run (--max-restarts {restarts}) but shares its rendezvous "
            "store with it, and a restarted group can then hang or fail (pytorch/pytorch#167288). Start torchrun "
            "with --rdzv-backend c10d and TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 on every node; see docs/cluster.md, "
            "'Elastic training'.")


def start_process_group(backend: str, timeout_s: float) -> None:
    import datetime

    import torch.distributed as dist

    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


class RankWentSilent(SsiwError):
    """A collective timed out because one or more ranks stopped answering (a hung node, a cut network)."""


def timed_out(error: BaseException) -> bool:
    """Whether a collective's error is its timeout (gloo and NCCL both say so in the message)."""
    text = str(error).lower()
    return "timed out" in text or "timeout" in text


def silent_ranks_error(error: BaseException, rank: int, world: int, step: int, timeout_s: float,
                       grace_s: float = 5.0) -> RankWentSilent:
    """After a collective timed out on this rank: every rank still alive checks in through the process
    group's store; the ranks that have not checked in after `grace_s` are the silent ones. A hung rank
    cannot write, so it is never taken for a live one; a live rank that timed out more than `grace_s`
    later than this one would be named too (the message says "did not answer")."""
    import datetime
    import time

    import torch.distributed as dist

    where = f"a collective timed out after {timeout_s:g} s (dist_timeout_s) in step {step + 1}"
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(datetime.timedelta(seconds=grace_s * 2))
        key = f"ssiw/alive-after-timeout/{step}/"
        store.set(f"{key}{rank}", socket.gethostname())
        time.sleep(grace_s)
        silent = [r for r in range(world) if not store.check([f"{key}{r}"])]
    except Exception as store_error:  # noqa: BLE001 -- the store's client raises many types when its host is gone
        return RankWentSilent(
            f"{where}, and the rendezvous store (on the node of rank 0, MASTER_ADDR) did not answer either "
            f"({type(store_error).__name__}): rank 0's node went silent. Fix or replace it, then start every "
            f"node again with --resume auto. The collective's error: {error}")
    if not silent:
        return RankWentSilent(f"{where}, but every rank answered afterwards (a slow rank, not a silent one: raise "
                              f"dist_timeout_s). The collective's error: {error}")
    names = ", ".join(str(r) for r in silent)
    return RankWentSilent(
        f"{where}: rank{'s' if len(silent) > 1 else ''} {names} of {world} went silent (did not answer within "
        f"{grace_s:g} s). Fix or replace that node, then start every node again with --resume auto. "
        f"The collective's error: {error}")
