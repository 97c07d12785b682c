"""`ssiw import-ssiw` and `ssiw pseudo-label`: models in (the authors' release) and out (labels as data).
Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(1)


def import_ssiw(
    checkpoint: Annotated[Path, typer.Argument(help="the authors' segformer_7data.pth")],
    embeddings: Annotated[Path, typer.Argument(help="their label embeddings, universal_cat2vec.npy (194 x 512)")],
    out: Annotated[Path, typer.Option(help="run folder to create, e.g. runs/ssiw-release")],
    labels: Annotated[Path | None, typer.Option(
        help="one class name per embedding row (default: the MSeg universal taxonomy, shipped)")] = None,
    encoder: Annotated[str, typer.Option(
        help="text encoder the embeddings came from, used for --label sentences")] = "open_clip:ViT-B-32:openai",
) -> None:
    """Turn the SSIW authors' SegFormer-B5 release into an ssiw run folder (checked tensor by tensor)."""
    from trainer.import_ssiw import ReleaseError, import_release

    if (out / "checkpoints").exists() and any((out / "checkpoints").glob("step-*.pt")):
        _fail(f"{out}: already holds checkpoints; choose a new --out folder")
    try:
        summary = import_release(checkpoint, embeddings, out, labels, encoder)
    except (ReleaseError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"run folder: {summary['run_dir']} ({summary['labels']} labels, {summary['dim']}-d; "
               f"left out {summary['left_out']} tensors of the auxiliary head and loss)")
    typer.echo(f"try: ssiw segment {summary['run_dir']} photo.jpg --scale 720")
