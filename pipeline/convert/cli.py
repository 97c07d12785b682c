"""`ssiw convert`. Heavy imports stay inside the functions."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.errors import BadInput, NotFound

# A few unreadable files in a release are normal; a tenth of a split quarantined almost always means
# the YAML is wrong (a missing class or colour, a wrong pattern or suffix), so the job says so.
DEFAULT_MAX_QUARANTINED = 0.1


def _jobs(dataset: str | None, root: Path | None, all_: bool, roots: Path | None) -> list[tuple[str, Path]]:
    """(dataset, root) pairs from the arguments or from roots.yaml (paths relative to that file)."""
    if all_:
        if roots is None:
            raise BadInput("--all needs --roots roots.yaml (a mapping dataset name -> root folder)")
        from pipeline.taxonomy.yaml_io import read_yaml

        if not roots.is_file():
            raise NotFound(f"{roots}: file not found")
        mapping = read_yaml(roots)
        if not isinstance(mapping, dict) or not mapping:
            raise BadInput(f"{roots}: expected a mapping of dataset name -> root folder")
        return [(str(name), (roots.parent / str(path)).resolve()) for name, path in mapping.items()]
    if dataset is None or root is None:
        raise BadInput("give DATASET and --root PATH, or --all --roots roots.yaml")
    return [(dataset, root)]


def convert(
    dataset: str | None = typer.Argument(None, help="dataset name (its taxonomy YAML's `name`)"),
    root: Path | None = typer.Option(None, "--root", help="the dataset's root folder, as downloaded"),
    split: str | None = typer.Option(None, "--split", help="one split (default: every split in the YAML)"),
    out: str | None = typer.Option(None, "--out", help="shard folder or s3://bucket/prefix [default: ./shards or $SSIW_SHARDS]"),
    taxonomies: list[Path] | None = typer.Option(
        None, "--taxonomies", help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"),
    no_ray: bool = typer.Option(False, "--no-ray", help="run in this process instead of as Ray tasks"),
    ray_address: str | None = typer.Option(
        None, "--ray-address",
        help="join this Ray cluster (default: $RAY_ADDRESS, else a private Ray on 127.0.0.1)",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="parallel shard tasks (default: every CPU of the machine or cluster)"
    ),
    task_timeout: float | None = typer.Option(
        None, "--task-timeout", min=1,
        help="Ray: seconds a shard task may run before it is cancelled and run on another node "
             "(default: 5x the median finished shard, at least 120 s)",
    ),
    strict: bool = typer.Option(False, "--strict", help="stop at the first bad sample instead of quarantining it"),
    shard_size: str = typer.Option("1GB", "--shard-size", help="target shard size: 1GB, 500MB, 2GiB, ..."),
    shard_samples: int = typer.Option(
        20_000, "--shard-samples", min=1, help="a shard also closes at this many samples (missing files weigh nothing)"
    ),
    box_embeddings: str | None = typer.Option(
        None, "--box-embeddings", help="box data: also store CLIP crop embeddings, open_clip:MODEL:PRETRAINED"
    ),
    all_: bool = typer.Option(False, "--all", help="convert every dataset listed in --roots"),
    roots: Path | None = typer.Option(None, "--roots", help="YAML mapping dataset name -> root (with --all)"),
    limit: int | None = typer.Option(
        None, "--limit", min=1,
        help="dry run: pair and read each split's first N samples (by key) and print the pairing, the classes "
             "found and the raw values the taxonomy lacks; writes nothing, starts no Ray",
    ),
    max_samples: int | None = typer.Option(
        None, "--max-samples", min=1,
        help="convert a seeded subset of each split: exactly this many samples (all when the split is smaller), "
             "the same ones whatever order the files are listed in",
    ),
    fraction: float | None = typer.Option(
        None, "--fraction", min=0.0, max=1.0,
        help="or: this share of each split's samples, rounded to the nearest sample (seeded, like --max-samples)",
    ),
    subset_seed: int = typer.Option(
        0, "--subset-seed", help="which subset --max-samples / --fraction keep; changing it redoes the shards"),
    max_quarantined: float = typer.Option(
        DEFAULT_MAX_QUARANTINED, "--max-quarantined", min=0.0, max=1.0,
        help="exit 1 when a split quarantines more than this share of its samples (its shards are still "
             "written): a few broken files are normal, a tenth almost always means a wrong YAML (a missing "
             "class or colour, a wrong pattern). 1 turns it off; a split that writes nothing always fails",
    ),
) -> None:
    """Convert a dataset into WebDataset shards, with manifests and a quarantine report. Safe to kill and re-run."""
    from rich.console import Console

    from pipeline import storage
    from pipeline.convert.boxemb import box_embedder, parse_spec
    from pipeline.convert.plan import parse_size
    from pipeline.convert.readers import get_reader
    from pipeline.convert.runner import convert_split, ensure_ray
    from pipeline.convert.shard import ShardOptions
    from pipeline.convert.subset import subset_from
    from pipeline.paths import default_shard_dir
    from pipeline.ray_session import stop
    from pipeline.taxonomy.load import load_taxonomy_set

    shard_bytes = parse_size(shard_size)
    if box_embeddings:
        parse_spec(box_embeddings)
    jobs = _jobs(dataset, root, all_, roots)
    taxset = load_taxonomy_set(taxonomies)
    taxes = [taxset.dataset(name) for name, _ in jobs]

    out_dir = storage.as_location(out) if out else default_shard_dir()
    if fraction == 0:
        raise BadInput("--fraction must be above 0")
    options = ShardOptions(strict=strict, box_embeddings=box_embeddings,
                           subset=subset_from(max_samples, fraction, subset_seed))
    console = Console()
    results = []
    started_ray = False
    try:
        if box_embeddings and any(t.supervision.value == "box" for t in taxes):
            box_embedder(box_embeddings)  # fail fast, in the driver, when the weights are missing
        # Which splits to convert is settled before Ray starts, so a wrong root fails at once.
        splits = {
            tax.name: [split] if split else _present_splits(tax, r, console) for tax, (_, r) in zip(taxes, jobs)
        }
        if limit is not None:
            _peek(taxes, jobs, splits, limit, console)
            return
        if not no_ray:
            started_ray = ensure_ray(ray_address, workers)
        for tax, (_, dataset_root) in zip(taxes, jobs):
            reader = get_reader(tax.format)
            for s in splits[tax.name]:
                results.append(
                    convert_split(
                        tax, reader, dataset_root, s, out_dir, shard_bytes=shard_bytes, options=options,
                        use_ray=not no_ray, workers=workers, task_timeout=task_timeout,
                        shard_samples=shard_samples,
                    )
                )
    finally:
        stop(started_ray)
    report_results(console, results, out_dir, title=f"converted into {out_dir}")
    failed = failed_splits(results, max_quarantined)
    if failed:
        raise BadInput("\n".join(failed))


def report_results(console, results: list, out_dir, title: str) -> None:
    """What a convert (or a corpus build) prints at its end: a row per split, what the readers dropped
    or changed by reason, why finished shards were redone, unknown raw values, quarantine reports."""
    from rich import box
    from rich.table import Table

    from pipeline import storage
    from pipeline.convert.manifest import quarantine_path

    # No vertical rules and names folded rather than cut: the table fits 80 columns.
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    for col in ("dataset", "split", "shards", "kept", "written", "quarantined", "seconds", "img/s"):
        text = col in ("dataset", "split")
        table.add_column(col, justify="left" if text else "right", overflow="fold" if text else "ellipsis")
    for r in results:
        rate = r.written / r.seconds if r.seconds else 0.0
        table.add_row(r.dataset, r.split, str(r.shards), str(r.kept), str(r.written), str(r.quarantined),
                      f"{r.seconds:.1f}", f"{rate:.1f}")
    console.print(table)
    counted = [(r, what, count) for r in results for what, count in r.notes.items() if count]
    if counted:  # every box or entry the converter dropped, clipped, kept out or changed, by reason
        notes = Table(title="dropped, clipped, kept out or changed, by reason", box=box.SIMPLE_HEAD,
                      padding=(0, 1), pad_edge=False)
        for col in ("dataset", "split", "reason", "count"):
            notes.add_column(col, justify="right" if col == "count" else "left",
                             overflow="fold" if col != "count" else "ellipsis")
        for r, what, count in counted:
            notes.add_row(r.dataset, r.split, what, f"{count:,}")
        console.print(notes)
    for r in results:
        for why, count in r.redone.items():  # finished shards converted again, and why
            console.print(f"{r.dataset}/{r.split}: redid {count} shard(s): {why}", soft_wrap=True, highlight=False)
    unknown = [u for r in results for u in r.unknown]
    if unknown:
        from pipeline.convert.unknowns import render

        console.print(render(unknown))
    written, quarantined = sum(r.written for r in results), sum(r.quarantined for r in results)
    console.print(f"written {written} samples, quarantined {quarantined}", soft_wrap=True)
    for r in results:
        if r.quarantined:  # the real files, one a line, so they can be copied
            console.print(f"  {r.quarantined} quarantined: {quarantine_path(storage.join(out_dir, r.dataset), r.split)}",
                          soft_wrap=True, highlight=False)


def failed_splits(results: list, max_quarantined: float, setting: str = "--max-quarantined") -> list[str]:
    """The splits that wrote nothing, or quarantined more than the allowed share, one line each (also
    what `ssiw corpus build` checks, against its recipe's `setting`)."""
    lines = []
    for r in results:
        total = r.written + r.quarantined
        if r.written == 0:
            lines.append(f"{r.dataset}/{r.split} wrote nothing: all {total} samples were quarantined")
        elif r.quarantined / total > max_quarantined:
            lines.append(f"{r.dataset}/{r.split} quarantined {r.quarantined} of {total} samples "
                         f"({r.quarantined / total:.0%}), more than {setting} {max_quarantined:g}")
    if lines:
        lines.append("(see the quarantine reports above; `ssiw convert ... --limit 20` shows a few samples quickly)")
    return lines


def _peek(taxes, jobs, splits: dict[str, list[str]], limit: int, console) -> None:
    """--limit: read a few samples of each split and print what a convert would make of them."""
    from pipeline.convert import peek
    from pipeline.convert.readers import get_reader

    for tax, (_, dataset_root) in zip(taxes, jobs):
        for s in splits[tax.name]:
            for part in peek.render(peek.peek_split(tax, get_reader(tax.format), dataset_root, s, limit), tax):
                console.print(part, soft_wrap=isinstance(part, str), highlight=False)


def _present_splits(tax, root: Path, console) -> list[str]:
    """Without --split: the taxonomy's splits whose images are there; the others are listed as
    absent, and none at all is an error naming what was looked for."""
    from pipeline.convert.runner import ConvertError, split_present

    if not Path(root).is_dir():
        raise ConvertError(f"{tax.name}: dataset root {root} does not exist or is not a folder")
    present = [s for s in tax.splits if split_present(tax, root, s)]
    absent = [s for s in tax.splits if s not in present]
    if not present:
        looked = "; ".join(f"{s}: {tax.splits[s].images!r}" for s in tax.splits)
        raise ConvertError(f"{tax.name}: none of the taxonomy's splits is under {root} (looked for images {looked})")
    if absent:
        shown = ", ".join(f"{s} ({tax.splits[s].images!r})" for s in absent)
        console.print(f"{tax.name}: not under {root}, skipped: {shown}", soft_wrap=True, highlight=False)
    return present
