"""`ssiw labels similarity` and `ssiw labels audit`: look at the label space before training on it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Audit the registry's label texts: similarity heatmap and duplicate audit.", no_args_is_help=True
)
console = Console()

TaxonomyDir = typer.Option(
    None, "--taxonomies", "-t", help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"
)
CacheDir = typer.Option(None, "--cache", help="cache folder (default: ./cache or $SSIW_CACHE)")
Encoder = typer.Option("minilm", "--encoder", "-e", help="'minilm' or 'open_clip:MODEL[:PRETRAINED]'")
OutPng = typer.Option(
    None, "--out", "-o", help="heatmap PNG (default: <cache>/label_audit/similarity-<encoder>-<mode>.png)"
)
Device = typer.Option(None, "--device", help="torch device for embedding (default: cuda when available)")


def _table(taxonomies: list[Path] | None, cache: Path | None, encoder: str, mode: str, device: str | None):
    """The taxonomy and its embedding table, embedding first when the table is missing or stale."""
    from pipeline.embed.run import embed_labels
    from pipeline.embed.table import load_table
    from pipeline.paths import default_cache_dir, default_taxonomy_dir
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(taxonomies or default_taxonomy_dir())
    result = embed_labels(taxset, cache or default_cache_dir(), encoder, mode, device=device)
    if not result.skipped:
        console.print(f"embedded {result.rows} labels -> {result.path}", highlight=False)
    return taxset, load_table(result.path)


@app.command("similarity")
def similarity(
    encoder: str = Encoder,
    mode: str = typer.Option("sentence", "--mode", "-m", help="'sentence', 'word', or 'both' (compare them)"),
    out: Path | None = OutPng,
    taxonomies: list[Path] | None = TaxonomyDir,
    cache: Path | None = CacheDir,
    device: str | None = Device,
) -> None:
    """Heatmap of pairwise cosine similarity, labels ordered by group, and the separation score
    (mean within-group cosine minus mean between-group cosine; higher keeps groups apart)."""
    from pipeline.embed.encoders import get_encoder
    from pipeline.label_audit.similarity import plot_heatmap, registry_space, separation
    from pipeline.paths import default_cache_dir

    modes = ["sentence", "word"] if mode == "both" else [mode]
    results = Table(title="label-space separation (within-group minus between-group mean cosine)")
    for col in ("encoder", "mode", "labels", "within", "between", "separation", "heatmap"):
        justify = "left" if col in ("encoder", "mode", "heatmap") else "right"
        results.add_column(col, justify=justify, overflow="fold")
    for m in modes:
        taxset, table = _table(taxonomies, cache, encoder, m, device)
        space = registry_space(table, taxset)
        sim = space.similarity()
        sep = separation(sim, space.groups)
        enc_id = get_encoder(encoder).id
        if out is None:
            png = (cache or default_cache_dir()) / "label_audit" / f"similarity-{enc_id}-{m}.png"
        else:
            png = out if len(modes) == 1 else out.with_name(f"{out.stem}-{m}{out.suffix}")
        plot_heatmap(space, sim, png, f"{table.encoder}, {m} mode: separation {sep.score:.3f}")
        results.add_row(
            table.encoder,
            m,
            str(len(space.keys)),
            f"{sep.within:.3f}",
            f"{sep.between:.3f}",
            f"{sep.score:.3f}",
            str(png),
        )
        # One plain line per mode as well, easy to grep and paste into the README.
        console.print(
            f"separation {table.encoder} {m}: {sep.score:.4f} (within {sep.within:.4f}, between {sep.between:.4f}, "
            f"{len(space.keys)} labels)",
            highlight=False,
        )
    console.print(results)


@app.command("audit")
def audit(
    encoder: str = Encoder,
    mode: str = typer.Option("sentence", "--mode", "-m", help="'sentence' or 'word'"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="only the labels this dataset uses"),
    top: int = typer.Option(3, "--top", "-k", min=1, help="neighbours listed per label"),
    duplicate: float = typer.Option(
        0.9, "--duplicate", help="flag a pair at or above this cosine as a likely duplicate"
    ),
    ambiguous: float = typer.Option(
        0.8, "--ambiguous", help="flag a pair at or above this cosine as ambiguous"
    ),
    only_flagged: bool = typer.Option(
        False, "--only-flagged", help="list only labels with a flagged neighbour"
    ),
    taxonomies: list[Path] | None = TaxonomyDir,
    cache: Path | None = CacheDir,
    device: str | None = Device,
) -> None:
    """For each label, its nearest labels used by OTHER datasets, flagging likely duplicates and
    ambiguous pairs, so whoever adds a dataset sees where its labels collide with existing ones."""
    from pipeline.label_audit.audit import audit_labels, flagged_pairs

    taxset, table = _table(taxonomies, cache, encoder, mode, device)
    entries = audit_labels(table, taxset, top=top, duplicate=duplicate, ambiguous=ambiguous, dataset=dataset)
    listing = Table(title=f"nearest labels from other datasets ({table.encoder}, {mode} mode)")
    for col in ("label", "used by", "nearest (cosine)"):
        listing.add_column(col, overflow="fold")
    for entry in entries:
        if only_flagged and not entry.flagged:
            continue
        near = "; ".join(
            f"{n.label} {n.similarity:.2f}"
            + (f" [{'red' if n.flag == 'duplicate?' else 'yellow'}]{n.flag}[/]" if n.flag else "")
            for n in entry.neighbours
        )
        listing.add_row(entry.label, ", ".join(entry.datasets) or "-", near or "-")
    console.print(listing)
    pairs = flagged_pairs(entries)
    for a, b, sim, flag in pairs:
        console.print(f"{flag:>10}  {a} ~ {b}  {sim:.3f}", highlight=False)
    console.print(
        f"{len(pairs)} flagged pair(s) among {len(entries)} labels "
        f"(duplicate >= {duplicate}, ambiguous >= {ambiguous})",
        highlight=False,
    )
