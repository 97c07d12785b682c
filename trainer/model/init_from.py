"""`init:` in the training config: start the network from an ssiw run or checkpoint (fine-tuning).

Only the network's weights are taken; the optimizer, schedule, step and temperature start fresh
from the config. The run may come from `ssiw train` or `ssiw import-ssiw`; its network must be the
config's model with the same output width as the new embedding table (same text encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import BadInput, NotFound


def load_init(net, source: str | Path, model: str, dim: int, table_encoder: str | None = None) -> dict:
    """Load the network weights of `source` into `net` (strictly); returns what was loaded, for the log."""
    from trainer.model.checkpoint import load_checkpoint

    try:
        state = load_checkpoint(source)
    except NotFound as e:
        raise NotFound(f"init: {e}") from e
    except BadInput as e:
        raise BadInput(f"init: {e}") from e
    theirs = state["config"].get("model")
    if theirs != model:
        raise BadInput(f"init: {source} holds a {theirs!r} network but the config's model is {model!r}")
    ls = state["label_space"]
    their_dim = int(np.asarray(ls["vectors"]).shape[1])
    if their_dim != dim:
        raise BadInput(
            f"init: {source} outputs {their_dim}-d embeddings (text encoder {ls.get('encoder')}) but the table's "
            f"are {dim}-d ({table_encoder}); embed the new taxonomy with the same encoder")
    try:
        net.load_state_dict(state["model"], strict=True)
    except RuntimeError as e:
        raise BadInput(f"init: {source} does not fit the configured {model!r} network (width?): {e}") from e
    note = ""
    if table_encoder and ls.get("encoder") and ls.get("encoder") != table_encoder:
        note = f" (its labels were embedded with {ls.get('encoder')}, the table with {table_encoder})"
    return {"source": str(source), "step": int(state.get("step", 0)), "note": note}
