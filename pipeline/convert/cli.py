"""`ssiw convert`, `ssiw shards stats` and `ssiw shards preview`. Heavy imports stay inside the functions."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.errors import BadInput, NotFound

shards_app = typer.Typer(help="Inspect converted shards.", no_args_is_help=True)


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
    taxonomies: Path | None = typer.Option(None, "--taxonomies", help="taxonomy folder [default: shipped]"),
    no_ray: bool = typer.Option(False, "--no-ray", help="run in this process instead of as Ray tasks"),
    ray_address: str | None = typer.Option(
        None, "--ray-address",
        help="join this Ray cluster (default: $RAY_ADDRESS, else a private Ray on 127.0.0.1)",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="parallel shard tasks (default: every CPU of the machine or cluster)"
    ),
    strict: bool = typer.Option(False, "--strict", help="stop at the first bad sample instead of quarantining it"),
    shard_size: str = typer.Option("1GB", "--shard-size", help="target shard size: 1GB, 500MB, 2GiB, ..."),
    box_embeddings: str | None = typer.Option(
        None, "--box-embeddings", help="box data: also store CLIP crop embeddings, open_clip:MODEL:PRETRAINED"
    ),
    all_: bool = typer.Option(False, "--all", help="convert every dataset listed in --roots"),
    roots: Path | None = typer.Option(None, "--roots", help="YAML mapping dataset name -> root (with --all)"),
) -> None:
    """Convert a dataset into WebDataset shards, with manifests and a quarantine report. Safe to kill and re-run."""
    from rich.console import Console
    from rich.table import Table

    from pipeline import storage
    from pipeline.convert.boxemb import box_embedder, parse_spec
    from pipeline.convert.manifest import quarantine_path
    from pipeline.convert.plan import parse_size
    from pipeline.convert.readers import get_reader
    from pipeline.convert.runner import convert_split, ensure_ray
    from pipeline.convert.shard import ShardOptions
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
    options = ShardOptions(strict=strict, box_embeddings=box_embeddings)
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
        if not no_ray:
            started_ray = ensure_ray(ray_address, workers)
        for tax, (_, dataset_root) in zip(taxes, jobs):
            reader = get_reader(tax.format)
            for s in splits[tax.name]:
                results.append(
                    convert_split(
                        tax, reader, dataset_root, s, out_dir, shard_bytes=shard_bytes, options=options,
                        use_ray=not no_ray, workers=workers,
                    )
                )
    finally:
        stop(started_ray)
    table = Table(title=f"converted into {out_dir}")
    for col in ("dataset", "split", "shards", "kept", "written", "quarantined", "seconds", "img/s"):
        table.add_column(col, justify="left" if col in ("dataset", "split") else "right")
    for r in results:
        rate = r.written / r.seconds if r.seconds else 0.0
        table.add_row(r.dataset, r.split, str(r.shards), str(r.kept), str(r.written), str(r.quarantined),
                      f"{r.seconds:.1f}", f"{rate:.1f}")
    console.print(table)
    for r in results:
        for what, count in r.notes.items():
            if count:
                console.print(f"{r.dataset}/{r.split}: {count:,} {what}")
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


@shards_app.command("stats")
def stats(
    out: str | None = typer.Option(None, "--out", help="shard folder or s3:// URL [default: ./shards or $SSIW_SHARDS]"),
    png: str | None = typer.Option(None, "--png", help="bar chart, a path or URL [default: <out>/stats.png]"),
    taxonomies: Path | None = typer.Option(None, "--taxonomies", help="for class names [default: shipped]"),
    top: int = typer.Option(25, "--top", min=0, help="classes shown per dataset (0: all)"),
) -> None:
    """Per-dataset and per-class counts of converted shards, and a bar chart PNG."""
    from rich.console import Console
    from rich.table import Table

    from pipeline import storage
    from pipeline.convert import stats as st
    from pipeline.paths import default_shard_dir

    out_dir = storage.as_location(out) if out else default_shard_dir()
    manifests = st.load_manifests(out_dir)
    per_split = st.dataset_table(out_dir, manifests)
    per_class = st.class_table(manifests)
    names = st.class_names(taxonomies)
    console = Console()
    table = Table(title=f"shards in {out_dir}")
    for col in ("dataset", "split", "supervision", "shards", "samples", "GB", "quarantined"):
        table.add_column(col, justify="left" if col in ("dataset", "split", "supervision") else "right")
    for r in per_split.iter_rows(named=True):
        table.add_row(r["dataset"], r["split"], r["supervision"], str(r["shards"]), str(r["samples"]),
                      f"{r['bytes'] / 1e9:.3f}", str(r["quarantined"]))
    console.print(table)
    for dataset in sorted(set(per_class["dataset"])):
        rows = per_class.filter(per_class["dataset"] == dataset)
        shown = rows.head(top) if top else rows
        t = Table(title=f"{dataset}: classes by images containing them")
        for col in ("index", "class", "images", "pixel share"):
            t.add_column(col, justify="left" if col == "class" else "right")
        for r in shown.iter_rows(named=True):
            t.add_row(str(r["class_index"]), st.class_name(names, dataset, r["class_index"]), str(r["images"]),
                      f"{r['pixel_share']:.2%}")
        console.print(t)
        if len(shown) < len(rows):
            console.print(f"  ({len(rows) - len(shown)} more classes; --top 0 shows all)")
    png_path = storage.as_location(png) if png else storage.join(out_dir, "stats.png")
    st.plot(per_split, per_class, names, png_path, top or 10**6)
    console.print(f"bar chart: {png_path}")


@shards_app.command("preview")
def preview(
    datasets: list[str] | None = typer.Argument(None, help="datasets to show [default: every converted one]"),
    html: Path = typer.Option(Path("preview.html"), "--html", help="the page to write (one self-contained file)"),
    n: int = typer.Option(24, "--n", min=1, help="samples shown per dataset"),
    out: str | None = typer.Option(None, "--out", help="shard folder or s3:// URL [default: ./shards or $SSIW_SHARDS]"),
    taxonomies: Path | None = typer.Option(None, "--taxonomies", help="for class names [default: shipped]"),
    cache: Path | None = typer.Option(None, "--cache", help="description cache folder [default: ./cache or $SSIW_CACHE]"),
) -> None:
    """One HTML page per shard folder: samples with label maps or boxes drawn, legend, class histogram, quarantine."""
    from pipeline import storage
    from pipeline.convert import preview as pv
    from pipeline.errors import UnknownName
    from pipeline.paths import default_cache_dir, default_shard_dir
    from pipeline.safe_write import write_text_atomic

    shard_dir = storage.as_location(out) if out else default_shard_dir()
    available = pv.dataset_names(shard_dir)
    if not available:
        raise NotFound(f"no manifests under {shard_dir}: run `ssiw convert` first")
    unknown = [d for d in datasets or [] if d not in available]
    if unknown:
        raise UnknownName(f"no shards for {', '.join(unknown)} under {shard_dir} (converted: {', '.join(available)})")
    texts = pv.class_texts(taxonomies, cache or default_cache_dir())
    previews = [pv.preview_dataset(shard_dir, d, n, texts) for d in datasets or available]
    write_text_atomic(Path(html), pv.render_html(previews, str(shard_dir)))
    shown = sum(len(p.thumbs) for p in previews)
    typer.echo(f"wrote {html}: {len(previews)} dataset(s), {shown} samples")
