"""`ssiw embed` (placeholder until the embeddings stage lands)."""
import typer


def embed() -> None:
    """Encode label texts into an embedding table (not implemented yet)."""
    raise typer.Exit("ssiw embed is not implemented yet")
