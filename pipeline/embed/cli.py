"""`ssiw embed`: encode every label text into cache/embeddings/<encoder_id>-<mode>.parquet."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()

TaxonomyDir = typer.Option(
    None, "--taxonomies", "-t", help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"
)
CacheDir = typer.Option(None, "--cache", help="cache folder (default: ./cache or $SSIW_CACHE)")

ENCODER_HELP = (
    "text encoder: 'minilm' (shipped all-MiniLM-L6-v2, works offline) or 'open_clip:MODEL[:PRETRAINED]' "
    "(default ViT-B-32:openai; PRETRAINED is an open_clip tag, a local checkpoint path, or 'random')"
)


def embed(
    taxonomies: list[Path] | None = TaxonomyDir,
    cache: Path | None = CacheDir,
    encoder: str = typer.Option("minilm", "--encoder", "-e", help=ENCODER_HELP),
    mode: str = typer.Option(
        "sentence", "--mode", "-m", help="'sentence' (An image of X. ...) or 'word' (X alone)"
    ),
    device: str | None = typer.Option(None, "--device", help="torch device (default: cuda when available)"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    force: bool = typer.Option(False, "--force", help="encode again even if the inputs are unchanged"),
) -> None:
    """Encode each label's text into an embedding table plus a dataset-class lookup.

    Uses the description cache written by `ssiw describe` when present (else the registry's
    descriptions). Re-running with unchanged inputs does nothing."""
    from pipeline.embed.run import embed_labels
    from pipeline.paths import default_cache_dir, default_taxonomy_dir
    from pipeline.taxonomy.load import load_taxonomy_set

    taxset = load_taxonomy_set(taxonomies or default_taxonomy_dir())
    result = embed_labels(
        taxset,
        cache or default_cache_dir(),
        encoder,
        mode,
        device=device,
        batch_size=batch_size,
        force=force,
    )
    if result.skipped:
        console.print(f"up to date: {result.path} ({result.rows} rows, inputs unchanged)", highlight=False)
    else:
        console.print(f"wrote {result.path} ({result.rows} rows)", highlight=False)
