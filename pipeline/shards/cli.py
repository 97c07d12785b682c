"""`ssiw shards stats` and `ssiw shards preview`. Heavy imports stay inside the functions."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.errors import NotFound

shards_app = typer.Typer(help="Inspect converted shards.", no_args_is_help=True)


@shards_app.command("stats")
def stats(
    out: str | None = typer.Option(None, "--out", help="shard folder or s3:// URL [default: ./shards or $SSIW_SHARDS]"),
    png: str | None = typer.Option(None, "--png", help="bar chart, a path or URL [default: <out>/stats.png]"),
    taxonomies: list[Path] | None = typer.Option(
        None, "--taxonomies", help="for class names: taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"),
    top: int = typer.Option(25, "--top", min=0, help="classes shown per dataset (0: all)"),
) -> None:
    """Per-dataset and per-class counts of converted shards, and a bar chart PNG."""
    from rich.console import Console
    from rich.table import Table

    from pipeline import storage
    from pipeline.paths import default_shard_dir
    from pipeline.shards import stats as st

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
    taxonomies: list[Path] | None = typer.Option(
        None, "--taxonomies", help="for class names: taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"),
    cache: Path | None = typer.Option(None, "--cache", help="description cache folder [default: ./cache or $SSIW_CACHE]"),
) -> None:
    """One HTML page per shard folder: samples with label maps or boxes drawn, legend, class histogram, quarantine."""
    from pipeline import storage
    from pipeline.errors import UnknownName
    from pipeline.paths import default_cache_dir, default_shard_dir
    from pipeline.safe_write import write_text_atomic
    from pipeline.shards import preview as pv

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
