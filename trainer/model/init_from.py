"""`init:` in the training config: start the network from an ssiw run or checkpoint (fine-tuning).

Only the network's weights are taken; the optimizer, schedule, step and temperature start fresh
from the config. The run may come from `ssiw train` or `ssiw import-ssiw`; its network must be the
config's model with the same output width as the new embedding table (same text encoder)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import BadInput, NotFound


def load_init(net, source: str | Path, model: str, dim: int, table_encoder: str | None = None) -> dict:
    """Load the network weights of `source` into `net` (strictly); returns what was loaded, for the log."""
    from trainer.model.checkpoint import RunCheckpoint

    try:
        ckpt = RunCheckpoint.load(source)
    except NotFound as e:
        raise NotFound(f"init: {e}") from e
    except BadInput as e:
        raise BadInput(f"init: {e}") from e
    theirs = ckpt.settings.model
    if theirs != model:
        raise BadInput(f"init: {source} holds a {theirs!r} network but the config's model is {model!r}")
    if ckpt.dim != dim:
        raise BadInput(
            f"init: {source} outputs {ckpt.dim}-d embeddings (text encoder {ckpt.encoder}) but the table's "
            f"are {dim}-d ({table_encoder}); embed the new taxonomy with the same encoder")
    try:
        net.load_state_dict(ckpt.network, strict=True)
    except RuntimeError as e:
        raise BadInput(f"init: {source} does not fit the configured {model!r} network (width?): {e}") from e
    note = ""
    if table_encoder and ckpt.encoder and ckpt.encoder != table_encoder:
        note = f" (its labels were embedded with {ckpt.encoder}, the table with {table_encoder})"
    return {"source": str(source), "step": ckpt.step, "note": note}
