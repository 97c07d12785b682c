"""`ssiw describe` (placeholder until the descriptions stage lands)."""
import typer


def describe() -> None:
    """Fetch Wikipedia descriptions for every label (not implemented yet)."""
    raise typer.Exit("ssiw describe is not implemented yet")
