"""`ssiw labels ...` (placeholder until the label-space tools land)."""
import typer

app = typer.Typer(help="Look at the label space: similarity heatmap and duplicate audit.", no_args_is_help=True)


@app.command("similarity")
def similarity() -> None:
    """Heatmap of pairwise label similarity (not implemented yet)."""
    raise typer.Exit("not implemented yet")
