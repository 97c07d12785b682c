"""Run a split's conversion: plan, skip finished shards, convert the rest (Ray or in-process), assemble.

Safe to kill: finished shards are kept, stale temps removed, and the manifest/quarantine/index are
built from the shard parts at the end. The same `convert_shard` runs as a Ray task or a plain call,
so `--no-ray` gives byte-identical shards.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import storage
from pipeline.convert import plan_store
from pipeline.convert.fingerprint import fingerprint_options, redo_reason
from pipeline.convert.manifest import INDEX_FILE, assemble_split, build_index, manifest_path, quarantine_path
from pipeline.convert.plan import DEFAULT_SHARD_SAMPLES, Plans, ShardPlan, plan_split
from pipeline.convert.plan_store import plan_folder
from pipeline.convert.readers.base import Reader
from pipeline.convert.readers.pairing import split_spec
from pipeline.convert.shard import (
    PARTS_DIR,
    ShardOptions,
    convert_shard,
    is_complete,
    read_part,
    shard_file_pattern,
    split_files,
)
from pipeline.convert.unknowns import UnknownValue, tally
from pipeline.errors import BadInput
from pipeline.names import path_name
from pipeline.safe_write import remove_orphaned_staging, remove_stale_temps
from pipeline.taxonomy.schema import DatasetTaxonomy

_GLOB_CHARS = set("*?[")


class ConvertError(BadInput):
    """A problem with the request itself (missing root, unknown split, nothing to convert)."""


@dataclass
class SplitResult:
    dataset: str
    split: str
    shards: int
    kept: int  # finished shards found from an earlier run and not redone
    written: int
    quarantined: int
    seconds: float
    notes: dict[str, int] = field(default_factory=dict)  # reader's planning counts (crowd boxes, ...)
    unknown: list[UnknownValue] = field(default_factory=list)  # raw values the taxonomy lacks
    redone: dict[str, int] = field(default_factory=dict)  # why finished shards were converted again -> shards


def _fixed_part(root: Path, spec: str) -> Path:
    """The part of a split entry before any glob character: it must exist for anything to match."""
    fixed = []
    for part in Path(spec).parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(root).joinpath(*fixed)


def split_present(tax: DatasetTaxonomy, root: Path, split: str) -> bool:
    """Whether the split's images are there at all (a release often ships only some splits)."""
    return split in tax.splits and _fixed_part(root, split_spec(tax, split).images).exists()


def check_inputs(tax: DatasetTaxonomy, root: Path, split: str) -> None:
    """Helpful errors before planning: the root, the split name, the split's images and labels."""
    root = Path(root)
    if not root.is_dir():
        raise ConvertError(f"{tax.name}: dataset root {root} does not exist or is not a folder")
    if split not in tax.splits:
        raise ConvertError(f"{tax.name}: no split {split!r} in the taxonomy (it lists: {', '.join(tax.splits)})")
    spec = split_spec(tax, split)  # its name and paths checked to stay under --out and --root
    for what, entry in (("images", spec.images), ("annotations", spec.annotations)):
        if entry is None:
            continue
        where = _fixed_part(root, entry)
        if not where.exists():
            raise ConvertError(
                f"{tax.name}/{split}: {where} not found (the taxonomy's {what} for {split!r}: {entry!r} under {root})"
            )


def remove_split_temps(out_ds: storage.Location, split: str) -> None:
    """Remove the temps of this split's shards, parts, manifest and quarantine file."""
    # Only this split's names: another job may be converting another split into the same folder.
    finals = (manifest_path(out_ds, split), quarantine_path(out_ds, split))
    ours = re.compile("|".join([shard_file_pattern(split).pattern, *(re.escape(storage.name(f)) for f in finals)]))
    remove_stale_temps(out_ds, ours)
    remove_stale_temps(storage.join(out_ds, PARTS_DIR), ours)


def prepare(out_ds: storage.Location, split: str, plans: list[ShardPlan]) -> list[ShardPlan]:
    """Remove this split's stale temps and shards beyond the plan; return the shards still to do."""
    remove_split_temps(out_ds, split)
    # Every job rewrites the shared index at its end, in seconds: an hour-old temp of it is dead.
    remove_stale_temps(storage.parent(out_ds), re.compile(re.escape(INDEX_FILE)), min_age_s=3600)
    for index, path in split_files(out_ds, split):
        if index >= len(plans):
            storage.remove(path)
    return [p for p in plans if not is_complete(out_ds, p)]


def redo_reasons(out_ds: storage.Location, todo: list[ShardPlan], inputs: dict[str, str]) -> dict[str, int]:
    """Shards an earlier run had finished that this run redoes, counted by reason (read before they are)."""
    reasons = Counter(redo_reason(read_part(out_ds, p.name), p.fingerprint, inputs) for p in todo)
    reasons.pop(None, None)  # never finished: plain work, not a redo
    return dict(reasons)


def report_absent(dataset: str, split: str, plans) -> None:
    """Say which folders are missing altogether before their files are quarantined one by one; the
    summary repeats it (plans.notes)."""
    import sys

    from pipeline.convert.absent import describe

    for where, count in plans.absent:
        print(f"{dataset}/{split}: {describe(where, count)} (each will be quarantined)", file=sys.stderr)
        plans.notes[f"files under {where}, a folder not found (quarantined)"] = count


def ensure_ray(address: str | None, workers: int | None) -> bool:
    """Join the requested Ray cluster or start a private loopback instance (pipeline/ray_session.py),
    unless already connected; True when this call connected. `workers` sizes a private instance;
    on a cluster it caps this job's shard tasks in flight (see _run_on_ray)."""
    from pipeline.ray_session import start_or_join

    return start_or_join(address, workers)


def _run_in_process(tax, reader, todo, out_dir, options, bar) -> None:
    remove_orphaned_staging()  # what an earlier, killed run staged here for an object store
    for plan in todo:
        convert_shard(tax, reader, plan, out_dir, options)
        bar.update(plan.count)


def _storage_env(out_dir) -> dict:
    """For an object-store output, the driver's AWS_* settings (endpoint, credentials, region), passed to
    the tasks so workers write where the driver would; nodes' own settings apply to anything not set here."""
    import os

    if not storage.is_remote(out_dir):
        return {}
    forwarded = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {"runtime_env": {"env_vars": forwarded}} if forwarded else {}


def _run_on_ray(tax, reader, todo, out_dir, options, bar, workers: int | None, task_timeout: float | None) -> None:
    from pipeline.convert.scheduler import Deadline, ShardScheduler

    # One task per CPU of each node, so the driver knows where every shard runs (pipeline/convert/
    # scheduler.py); --workers caps the tasks in flight (on a shared cluster, this job's share of it).
    scheduler = ShardScheduler(tax, reader, out_dir, options, workers, Deadline(fixed_s=task_timeout),
                               _storage_env(out_dir))
    scheduler.run(todo, bar)
    scheduler.sweep_nodes()


@dataclass
class SplitJob:
    """One split planned and checked against what earlier runs finished: what `run_job` converts.

    Holds ShardPlans only (the items are in the stored plan), so a corpus build can plan every split
    first, size one progress bar for all of them, and then convert them in turn."""

    tax: DatasetTaxonomy
    reader: Reader
    split: str
    out_dir: storage.Location
    out_ds: storage.Location
    store: storage.Location
    options: ShardOptions
    plans: Plans
    todo: list[ShardPlan]
    redone: dict[str, int]
    planning_s: float

    @property
    def total(self) -> int:
        """Items planned (samples written plus those that will be quarantined)."""
        return sum(p.count for p in self.plans)

    @property
    def remaining(self) -> int:
        """Items of the shards still to convert."""
        return sum(p.count for p in self.todo)


def plan_job(
    tax: DatasetTaxonomy,
    reader: Reader,
    root: Path,
    split: str,
    out_dir: storage.Location,
    *,
    shard_bytes: int,
    options: ShardOptions | None = None,
    shard_samples: int = DEFAULT_SHARD_SAMPLES,
) -> SplitJob:
    """Check the inputs, plan the split into its stored plan, clear stale temps and say which shards
    are still to do (and why finished ones are redone)."""
    options = options or ShardOptions()
    start = time.perf_counter()
    check_inputs(tax, root, split)
    if storage.is_remote(out_dir) and not storage.bucket_exists(out_dir):
        raise ConvertError(f"{out_dir}: no such bucket, or these credentials cannot see it (AWS_* variables, ~/.aws)")
    out_dir = out_dir if storage.is_remote(out_dir) else Path(out_dir).resolve()
    out_ds = storage.join(out_dir, path_name(tax.name, "dataset name"))
    # The plan goes to disk and each task reads its own shard's rows: the driver keeps no per-image
    # data while tasks run, and a task's arguments stay a few hundred bytes (Objects365: 1.7M images).
    store = plan_folder(out_ds, split)
    # The fingerprint covers the taxonomy's mapping and the reader's version, not only the files:
    # after an edited YAML, the shards whose labels would change are redone (fingerprint.py).
    inputs = options.inputs(tax, reader)
    plans = plan_split(reader, tax, Path(root).resolve(), split, shard_bytes, fingerprint_options(inputs),
                       store=store, max_samples=shard_samples, subset=options.subset)
    if not plans:
        plan_store.remove(store)
        raise ConvertError(f"{tax.name}/{split}: the reader found no samples under {root}")
    report_absent(tax.name, split, plans)
    storage.makedirs(out_ds)
    todo = prepare(out_ds, split, plans)
    redone = redo_reasons(out_ds, todo, inputs)
    return SplitJob(tax, reader, split, out_dir, out_ds, store, options, plans, todo, redone,
                    time.perf_counter() - start)


def run_job(
    job: SplitJob,
    bar,
    *,
    use_ray: bool = False,
    workers: int | None = None,
    task_timeout: float | None = None,
    index: bool = True,
) -> SplitResult:
    """Convert the job's remaining shards, advancing `bar` (a tqdm bar: this split's own, or one over
    a whole corpus) by each shard's items as it finishes; then assemble the manifest and quarantine report."""
    start = time.perf_counter()
    tax, reader, split, out_dir, out_ds = job.tax, job.reader, job.split, job.out_dir, job.out_ds
    if job.todo and use_ray:  # nothing to do touches no Ray API: one would start an unmanaged Ray
        _run_on_ray(tax, reader, job.todo, out_dir, job.options, bar, workers, task_timeout)
    elif job.todo:
        _run_in_process(tax, reader, job.todo, out_dir, job.options, bar)
    remove_split_temps(out_ds, split)  # of tasks killed with their node, or cancelled, during this run
    notes: dict[str, int] = {}  # what reading did to written samples (boxes clipped, pixels snapped), summed
    written, quarantined = assemble_split(out_ds, tax, split, job.plans, notes)
    plan_store.remove(job.store)
    unknown = tally(quarantine_path(out_ds, split), tax.name, split) if quarantined else []
    if index:
        build_index(out_dir)
    return SplitResult(
        dataset=tax.name,
        split=split,
        shards=len(job.plans),
        kept=len(job.plans) - len(job.todo),
        written=written,
        quarantined=quarantined,
        seconds=job.planning_s + time.perf_counter() - start,
        notes={**job.plans.notes, **notes},  # counted while planning, then while reading
        unknown=unknown,
        redone=job.redone,
    )


def convert_split(
    tax: DatasetTaxonomy,
    reader: Reader,
    root: Path,
    split: str,
    out_dir: storage.Location,
    *,
    shard_bytes: int,
    options: ShardOptions | None = None,
    use_ray: bool = False,
    workers: int | None = None,
    progress: bool = True,
    index: bool = True,
    task_timeout: float | None = None,
    shard_samples: int = DEFAULT_SHARD_SAMPLES,
) -> SplitResult:
    """Plan and convert one split, with a progress bar of its own (`plan_job` + `run_job`)."""
    from tqdm import tqdm

    job = plan_job(tax, reader, root, split, out_dir, shard_bytes=shard_bytes, options=options,
                   shard_samples=shard_samples)
    with tqdm(total=job.total, initial=job.total - job.remaining, unit="img", desc=f"{tax.name}/{split}",
              disable=not progress, dynamic_ncols=True) as bar:
        return run_job(job, bar, use_ray=use_ray, workers=workers, task_timeout=task_timeout, index=index)
