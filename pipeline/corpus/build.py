"""`ssiw corpus build`: describe, embed and convert every dataset of a recipe, then write corpus.json
and corpus.html beside the shards.

Pure orchestration of the stages' own functions (describe_labels, embed_labels, the convert runner's
plan_job / run_job); Ray only schedules shard tasks inside convert, in one Ray session for the build.

Resumable as a whole: describe keeps its cache, embed skips a table whose inputs are unchanged, and
convert keeps every finished shard whose fingerprint still matches. A dataset's cap and seed are part
of that fingerprint (pipeline/convert/subset.py), so a second build converts nothing and an edited
dataset entry redoes that dataset's shards alone. corpus.json is removed before the first shard is
converted and written last, so one that is there always describes the shards beside it.

Every split is planned before any is converted. Plans go to disk (the driver holds ShardPlans only),
so this costs no memory and no extra time; it buys one progress bar whose total is the whole corpus
from the start (a bar grown split by split shows no useful remaining time), and a root, key or
index problem in the ninth dataset found before hours of work on the first eight.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline import storage
from pipeline.convert.cli import failed_splits
from pipeline.convert.manifest import build_index, manifest_path, quarantine_path
from pipeline.convert.runner import ConvertError, SplitJob, SplitResult, check_inputs, split_present
from pipeline.corpus.recipe import CorpusRecipe, DatasetRecipe, dataset_hash, recipe_hash
from pipeline.corpus.resolve import ResolvedDataset, load_recipe_taxonomies, resolve
from pipeline.corpus.summary import REPORT_FILE, SUMMARY_FILE, CorpusSummary, DatasetSummary, SplitSummary
from pipeline.errors import BadInput, SsiwError
from pipeline.safe_write import write_text_atomic

PREVIEW_DIR = "previews"
PREVIEW_FILE = "preview.html"
DEFAULT_PREVIEW_SAMPLES = 8


class BuildFailed(BadInput):
    """A step of the build failed; the message names the dataset and split and what to do."""


@dataclass(frozen=True)
class BuildSettings:
    use_ray: bool = True
    ray_address: str | None = None
    workers: int | None = None
    task_timeout: float | None = None
    progress: bool = True
    preview_samples: int = DEFAULT_PREVIEW_SAMPLES


@dataclass
class BuildOutcome:
    summary: CorpusSummary
    summary_file: storage.Location
    report_file: storage.Location
    results: list[SplitResult] = field(default_factory=list)
    embedded: dict[str, bool] = field(default_factory=dict)  # mode -> whether its table was (re)written


def _print(message: str) -> None:
    print(message, flush=True)


def build_corpus(recipe: CorpusRecipe, recipe_file: str | Path, settings: BuildSettings = BuildSettings(),
                 say: Callable[[str], None] = _print) -> BuildOutcome:
    """Build the corpus `recipe` describes (its locations already overridden by the command line)."""
    from pipeline.convert.plan import parse_size
    from pipeline.ray_session import stop

    taxset = load_recipe_taxonomies(recipe)
    datasets = resolve(recipe, taxset, where=str(recipe_file))
    splits = _splits_to_build(datasets, say)
    shard_bytes = parse_size(recipe.convert.shard_size)
    _check_box_embeddings(recipe, datasets)
    out_dir = _out_location(recipe.out)
    cache = Path(recipe.cache).resolve()
    started_ray = False
    try:
        if settings.use_ray and not recipe.offline:  # describe fetches through Ray tasks too
            started_ray = _ray(settings)
        say(f"describe: {'registry descriptions (offline)' if recipe.offline else 'Wikipedia lead sentences'}")
        _describe(taxset, cache, recipe.offline, settings.use_ray)
        tables, embedded = _embed(taxset, cache, recipe)
        jobs = _plan_all(recipe, datasets, splits, out_dir, shard_bytes, say)
        if any(job.todo for job in jobs):
            _remove_summary(out_dir)  # the shards are about to change: no corpus.json may describe them
            if settings.use_ray and not started_ray:
                started_ray = _ray(settings)
        results = _convert_all(jobs, settings)
    finally:
        stop(started_ray)
    build_index(out_dir)
    summary = summarise(recipe, recipe_file, datasets, splits, out_dir, cache, tables)
    summary_file = storage.join(out_dir, SUMMARY_FILE)
    report_file = write_report(summary, out_dir, taxset, settings.preview_samples)
    failed = failed_splits(results, recipe.convert.max_quarantined, "the recipe's convert.max_quarantined")
    if failed:
        _remove_summary(out_dir)  # an earlier build's, written under a looser max_quarantined
        raise BuildFailed("\n".join([*failed, (f"corpus.json was not written. The report {report_file} lists the "
                                     "quarantine reasons; fix the taxonomy or the data (or raise convert."
                                     "max_quarantined in the recipe) and run the same command again: finished "
                                     "shards are kept.")]))
    write_text_atomic(summary_file, summary.model_dump_json(indent=2) + "\n")
    return BuildOutcome(summary, summary_file, report_file, results, embedded)


def _out_location(out: str) -> storage.Location:
    location = storage.as_location(out)
    return location if storage.is_remote(location) else Path(location).resolve()


def _ray(settings: BuildSettings) -> bool:
    from pipeline.convert.runner import ensure_ray

    return ensure_ray(settings.ray_address, settings.workers)


def _splits_to_build(datasets: list[ResolvedDataset], say) -> dict[str, list[str]]:
    """Each dataset's splits, every one checked before anything is written. A recipe that lists splits
    gets exactly those; without a list, the taxonomy's splits that are on disk (the others are named,
    as `ssiw convert` does). Every problem of every dataset is reported at once."""
    problems: list[str] = []
    chosen: dict[str, list[str]] = {}
    for d in datasets:
        name, tax = d.entry.name, d.taxonomy
        if not d.root.is_dir():
            problems.append(f"{name}: dataset root {d.root} does not exist or is not a folder")
            continue
        wanted = list(d.splits)
        if d.entry.splits is None:
            absent = [s for s in wanted if not split_present(tax, d.root, s)]
            wanted = [s for s in wanted if s not in absent]
            if absent and wanted:
                say(f"{name}: not under {d.root}, skipped: {', '.join(absent)}")
            elif absent:
                problems.append(f"{name}: none of the taxonomy's splits ({', '.join(absent)}) is under {d.root}")
        for split in wanted:
            try:
                check_inputs(tax, d.root, split)
            except ConvertError as e:
                problems.append(str(e))
        chosen[name] = wanted
    if problems:
        raise BuildFailed("; ".join(problems) + " (fix the dataset's `root` or the recipe's data_root, or pass "
                          "--data-root; `ssiw corpus check RECIPE` compares what is there with each release)")
    return chosen


def _check_box_embeddings(recipe: CorpusRecipe, datasets: list[ResolvedDataset]) -> None:
    """Fail in seconds, not after hours of dense datasets, when the crop embedder cannot load."""
    spec = recipe.convert.box_embeddings
    if not spec:
        return
    from pipeline.convert.boxemb import box_embedder, parse_spec

    parse_spec(spec)
    if any(d.taxonomy.supervision.value == "box" for d in datasets):
        box_embedder(spec)


def _describe(taxset, cache: Path, offline: bool, use_ray: bool) -> None:
    from pipeline.describe.run import describe_labels

    try:
        describe_labels(taxset, cache, offline=offline, use_ray=use_ray)
    except SsiwError as e:
        raise BuildFailed(f"describe: {e} (a recipe says `offline: true` to use the registry's descriptions)") from e


def _embed(taxset, cache: Path, recipe: CorpusRecipe) -> tuple[dict[str, str], dict[str, bool]]:
    """Every mode's table (skipped when its inputs are unchanged): mode -> path, mode -> written."""
    from pipeline.embed.encoders import get_encoder
    from pipeline.embed.run import embed_labels

    encoder = get_encoder(recipe.embed.encoder)
    tables, written = {}, {}
    for mode in recipe.embed.modes:
        result = embed_labels(taxset, cache, encoder, mode)
        tables[mode], written[mode] = str(Path(result.path).resolve()), not result.skipped
    return tables, written


def subset_of(entry: DatasetRecipe):
    """The convert subset a recipe entry asks for (pipeline/convert/subset.py), or None."""
    from pipeline.convert.subset import Subset

    return Subset(entry.max_samples, entry.fraction, entry.seed) if entry.capped else None


def _plan_all(recipe, datasets, splits, out_dir, shard_bytes: int, say) -> list[SplitJob]:
    from pipeline.convert.readers import get_reader
    from pipeline.convert.runner import plan_job
    from pipeline.convert.shard import ShardOptions

    jobs = []
    for d in datasets:
        options = ShardOptions(box_embeddings=recipe.convert.box_embeddings, subset=subset_of(d.entry))
        reader = get_reader(d.taxonomy.format)
        for split in splits[d.entry.name]:
            try:
                job = plan_job(d.taxonomy, reader, d.root, split, out_dir, shard_bytes=shard_bytes,
                               options=options, shard_samples=recipe.convert.shard_samples)
            except SsiwError as e:
                raise BuildFailed(f"{d.entry.name}/{split}: planning failed: {e}") from e
            left = f"{len(job.todo)} to convert" if job.todo else "all finished"
            say(f"planned {d.entry.name}/{split}: {job.total} samples in {len(job.plans)} shard(s), {left}")
            jobs.append(job)
    return jobs


def _convert_all(jobs: list[SplitJob], settings: BuildSettings) -> list[SplitResult]:
    """Convert every planned split in turn under one bar over the whole corpus."""
    from tqdm import tqdm

    from pipeline.convert.runner import run_job

    total = sum(job.total for job in jobs)
    done = sum(job.total - job.remaining for job in jobs)
    results = []
    with tqdm(total=total, initial=done, unit="img", disable=not settings.progress, dynamic_ncols=True) as bar:
        for n, job in enumerate(jobs, 1):
            where = f"{job.tax.name}/{job.split}"
            bar.set_description(f"corpus [{n}/{len(jobs)}] {where}")
            try:
                results.append(run_job(job, bar, use_ray=settings.use_ray, workers=settings.workers,
                                       task_timeout=settings.task_timeout, index=False))
            except SsiwError as e:
                raise BuildFailed(f"{where}: {e}\nShards finished so far are kept: fix this and run the same "
                                  "command again; only what is left is converted.") from e
    return results


def _remove_summary(out_dir: storage.Location) -> None:
    path = storage.join(out_dir, SUMMARY_FILE)
    if storage.exists(path):
        storage.remove(path)


# --- corpus.json --------------------------------------------------------------------------------------


def code_version() -> str:
    """pipeline.__version__, plus the git commit when the code runs from a checkout ('+dirty' when its
    tracked files differ from that commit)."""
    import pipeline

    here = Path(pipeline.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(here), *args], check=False, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return pipeline.__version__
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{pipeline.__version__}+g{commit}{'.dirty' if dirty else ''}"


def reason_kind(entry: dict) -> str:
    """A quarantine entry's reason without what is particular to its file, so a split's entries group
    into a few kinds ('missing file', 'corrupt or truncated image', 'values not in the taxonomy')."""
    if entry.get("unknown"):
        return "values not in the taxonomy"
    reason = str(entry.get("reason") or "").strip()
    key = str(entry.get("key") or "")
    if key and reason.startswith(f"{key}: "):
        reason = reason[len(key) + 2:]
    reason = re.sub(r"^line \d+: ", "", reason)
    return reason.split(": ", 1)[0].strip() or "no reason given"


def quarantine_reasons(path: storage.Location) -> dict[str, int]:
    """Reason kind -> quarantined samples, read line by line (a wrong taxonomy can quarantine millions)."""
    counts: dict[str, int] = {}
    if not storage.exists(path):
        return counts
    with storage.open_read(path) as f:
        for line in f:
            if line.strip():
                kind = reason_kind(json.loads(line))
                counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def split_summary(out_dir: storage.Location, dataset: str, split: str, index) -> SplitSummary:
    """A converted split from its manifest (per-class counts are there: no label is decoded again), the
    shard index and its quarantine report."""
    import polars as pl

    out_ds = storage.join(out_dir, dataset)
    manifest = storage.read_parquet(manifest_path(out_ds, split))
    shards = index.filter((pl.col("dataset") == dataset) & (pl.col("split") == split))
    labels = manifest["classes_present"].explode().drop_nulls().n_unique() if manifest.height else 0
    return SplitSummary(samples=manifest.height, quarantined=quarantine_reasons(quarantine_path(out_ds, split)),
                        shards=shards.height, bytes=int(shards["bytes"].sum()), labels_seen=labels)


def summarise(recipe: CorpusRecipe, recipe_file, datasets: list[ResolvedDataset], splits: dict[str, list[str]],
              out_dir: storage.Location, cache: Path, tables: dict[str, str]) -> CorpusSummary:
    from pipeline.shard_format import INDEX_FILE

    index = storage.read_parquet(storage.join(out_dir, INDEX_FILE))
    summaries = {}
    for d in datasets:
        name = d.entry.name
        summaries[name] = DatasetSummary(
            name=name, supervision=d.taxonomy.supervision.value, role=d.taxonomy.role.value,
            root=str(d.root.resolve()), classes=d.taxonomy.num_classes, dataset_hash=dataset_hash(recipe, d.entry),
            splits={s: split_summary(out_dir, name, s, index) for s in splits[name]},
            subset=subset_of(d.entry).tag() if d.entry.capped else None,  # preview: set by write_report
        )
    return CorpusSummary(
        name=recipe.name, recipe=str(Path(recipe_file).resolve()), recipe_hash=recipe_hash(recipe),
        code_version=code_version(), built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        shards=str(out_dir), cache=str(cache), taxonomies=[str(Path(t).resolve()) for t in recipe.taxonomies],
        encoder=recipe.embed.encoder, tables=tables, box_embeddings=recipe.convert.box_embeddings,
        datasets=summaries,
    )


# --- previews and the report ---------------------------------------------------------------------------


def write_previews(summary: CorpusSummary, out_dir: storage.Location, n: int) -> dict[str, str]:
    """`ssiw shards preview`'s page for each dataset with samples, into <out>/previews/<dataset>/;
    dataset -> its page relative to the report."""
    from pipeline.shards import preview as pv

    texts = pv.class_texts([Path(t) for t in summary.taxonomies] or None, Path(summary.cache))
    written = {}
    for name, d in summary.datasets.items():
        if not any(s.samples for s in d.splits.values()):
            continue
        page = pv.render_html([pv.preview_dataset(out_dir, name, n, texts)], str(out_dir))
        write_text_atomic(storage.join(out_dir, PREVIEW_DIR, name, PREVIEW_FILE), page)
        written[name] = f"{PREVIEW_DIR}/{name}/{PREVIEW_FILE}"
    return written


def write_report(summary: CorpusSummary, out_dir: storage.Location, taxset, preview_samples: int) -> storage.Location:
    """The previews, then corpus.html linking them (datasets without samples get no preview link)."""
    from pipeline.corpus.report import class_histograms, render_report

    previews = write_previews(summary, out_dir, preview_samples)
    for name, d in summary.datasets.items():
        d.preview = previews.get(name)
    histograms = class_histograms(out_dir, summary, taxset)
    return write_text_atomic(storage.join(out_dir, REPORT_FILE), render_report(summary, histograms))
