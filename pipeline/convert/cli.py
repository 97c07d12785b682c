"""`ssiw convert` and `ssiw shards ...` (placeholder until the converters land)."""
import typer

shards_app = typer.Typer(help="Inspect converted shards.", no_args_is_help=True)


def convert() -> None:
    """Convert a dataset into WebDataset shards (not implemented yet)."""
    raise typer.Exit("ssiw convert is not implemented yet")


@shards_app.command("stats")
def stats() -> None:
    """Per-dataset and per-class counts (not implemented yet)."""
    raise typer.Exit("not implemented yet")
