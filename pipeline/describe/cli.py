"""`ssiw describe`: fetch the Wikipedia lead sentence of every label into the description cache."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()

TaxonomyDir = typer.Option(
    None, "--taxonomies", "-t", help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"
)
CacheDir = typer.Option(None, "--cache", help="cache folder (default: ./cache or $SSIW_CACHE)")


def describe(
    taxonomies: list[Path] | None = TaxonomyDir,
    cache: Path | None = CacheDir,
    offline: bool = typer.Option(
        False, "--offline", help="never touch the network: registry descriptions only"
    ),
    refresh: bool = typer.Option(False, "--refresh", help="fetch every label again, even if cached"),
    no_ray: bool = typer.Option(
        False, "--no-ray", help="fetch in this process (a thread pool) instead of Ray"
    ),
    workers: int = typer.Option(4, "--workers", min=1, max=32, help="requests in flight at most"),
) -> None:
    """Fetch each label's Wikipedia lead sentence into cache/descriptions.parquet.

    Label text is "An image of {name}. {sentence}". A class `description` in a taxonomy YAML wins over
    the cache, and the registry's own description fills in for any label without a Wikipedia sentence.
    Missing and disambiguation pages are reported per label and never written as text."""
    from pipeline.describe.run import describe_labels
    from pipeline.paths import default_cache_dir, default_taxonomy_dir
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(taxonomies or default_taxonomy_dir())
    report = describe_labels(
        taxset,
        cache or default_cache_dir(),
        offline=offline,
        refresh=refresh,
        use_ray=not no_ray,
        workers=workers,
    )
    if report.problems:
        table = Table(title="labels without a Wikipedia sentence (the registry description is used)")
        for col in ("label", "title", "outcome", "detail"):
            table.add_column(col, overflow="fold")
        for r in report.problems:
            table.add_row(r.label, r.title, r.status, r.detail)
        console.print(table)
    fetched_ok = len(report.fetched) - len(report.problems)
    console.print(
        f"{len(report.fetched)} fetched ({fetched_ok} ok, {len(report.problems)} not), "
        f"{sum(report.sources.values())} labels: "
        + ", ".join(f"{n} from {src}" for src, n in sorted(report.sources.items()))
        + f" -> {report.cache_file}",
        highlight=False,
    )
