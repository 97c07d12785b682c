"""`ssiw train`, `ssiw eval`, `ssiw segment` (placeholders until the trainer lands)."""
import typer


def train() -> None:
    """Train on shards (not implemented yet)."""
    raise typer.Exit("not implemented yet")


def evaluate() -> None:
    """Zero-shot mIoU (not implemented yet)."""
    raise typer.Exit("not implemented yet")


def segment() -> None:
    """Label images (not implemented yet)."""
    raise typer.Exit("not implemented yet")
