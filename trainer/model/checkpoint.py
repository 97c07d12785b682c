"""Checkpoints: one torch file per save, written to a temporary name and renamed."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import BadInput, NotFound
from pipeline.safe_write import atomic_path


def save_checkpoint(path: Path, state: dict) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict:
    import torch

    p = Path(path)
    if p.is_dir():  # a run folder: its newest checkpoint
        found = latest_checkpoint(p)
        if found is None:
            raise NotFound(f"{p}: no checkpoints/step-*.pt in this run folder")
        p = found
    if not p.is_file():
        raise NotFound(f"{p}: checkpoint not found")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # torch.load raises many types for a damaged or foreign file (zip, pickle, EOF, ...)
        raise BadInput(f"{p}: not a readable checkpoint: {e}") from e
    for key in ("model", "config", "label_space", "step"):
        if key not in state:
            raise BadInput(f"{p}: not an ssiw checkpoint (no {key!r})")
    return state
