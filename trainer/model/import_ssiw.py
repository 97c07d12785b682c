"""`ssiw import-ssiw`: the authors' released SegFormer-B5 (`segformer_7data.pth`) and label embeddings
(`universal_cat2vec.npy`) as an ssiw run folder that `ssiw segment`, `ssiw eval`, `init:` and
`ssiw pseudo-label` take like any other run.

Their file is `{'state_dict': ...}` saved from `DataParallel(SegModel)`: keys read
`module.segmodel.encoder.block3.12.attn.kv.weight`. The encoder is MiT-B5, the head the SegFormer MLP
head (`linear_c1..4.proj`, `linear_fuse` conv + BN, `linear_pred` to 512 channels): exactly our
`segformer-b5` with a 512-d output, so every tensor maps one to one (the fused `kv` splits into key
and value). Their auxiliary FCN head, the unused `head.conv_seg` and the loss's class weights are
not part of the network and are left out. Anything else that does not fit is refused, by name.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput

# Parts of their file that are not the inference network (after `module.` / `segmodel.` are removed).
DROPPED_PREFIXES = ("auxi_net.", "head.conv_seg.", "criterion.")
CLIP_TEXT_ENCODER = "open_clip:ViT-B-32:openai"  # the text tower their 512-d label embeddings came from
LABEL_SPACE_NAME = "mseg-universal"
TEMPERATURE = 0.01  # their inference takes softmax(100 x cosine)
SHOWN = 5  # how many differing names an error lists


class ReleaseError(BadInput):
    """A release file that cannot be imported; the message names the file and what is wrong."""


def universal_names() -> list[str]:
    """The 194 MSeg universal class names, in the order of the release's embedding rows."""
    text = resources.files("trainer.model").joinpath("mseg_universal.txt").read_text()
    return _names_from_text(text)


def _names_from_text(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_label_names(path: Path, count: int) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ReleaseError(f"{p}: label names file not found")
    names = _names_from_text(p.read_text())
    if len(names) != count:
        raise ReleaseError(f"{p}: {len(names)} names, but the embeddings have {count} rows (one name per line)")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ReleaseError(f"{p}: names given twice: {dup[:SHOWN]}")
    return names


def read_release_state(path: Path) -> dict:
    """The network tensors of their checkpoint, keyed without `module.` / `segmodel.`."""
    import pickle
    import zipfile

    import torch

    p = Path(path)
    if not p.is_file():
        raise ReleaseError(f"{p}: checkpoint file not found")
    with open(p, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive (a legacy pickle before torch 1.6); a truncated zip loses its index.
    if not zipfile.is_zipfile(p) and not head.startswith(b"\x80"):
        raise ReleaseError(f"{p}: not a readable PyTorch checkpoint (truncated, or not written by torch.save)")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)  # tensors and plain containers only
    except pickle.UnpicklingError as e:
        raise ReleaseError(f"{p}: holds Python objects other than tensors, refused for safety: {e}") from e
    except Exception as e:  # truncated zip, not a torch file at all, ...
        raise ReleaseError(f"{p}: not a readable PyTorch checkpoint (truncated or another format): {e}") from e
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state or not all(hasattr(v, "shape") for v in state.values()):
        raise ReleaseError(f"{p}: expected {{'state_dict': {{name: tensor}}}} (the SSIW release layout)")
    out = {}
    for key, value in state.items():
        name = key.removeprefix("module.").removeprefix("segmodel.")
        out[name] = value
    return out


def expected_layout(net) -> dict[str, tuple]:
    """Their name -> shape for every tensor our `segformer-b5` needs, derived from our model."""
    from trainer.model.segformer_keys import to_v4, v4_shapes_to_authors

    shapes = {to_v4(k.removeprefix("net.")): tuple(v.shape) for k, v in net.state_dict().items()}
    return v4_shapes_to_authors(shapes)


def _optional(name: str) -> bool:
    # BatchNorm's update counter does not change inference; older saves may lack it.
    return name.endswith("num_batches_tracked")


def check_layout(state: dict, expected: dict, path: Path) -> list[str]:
    """Refuse unless the kept tensors are exactly the expected names and shapes; returns dropped names."""
    dropped = [k for k in state if k.startswith(DROPPED_PREFIXES)]
    kept = {k: tuple(v.shape) for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    missing = [k for k in expected if k not in kept and not _optional(k)]
    unexpected = [k for k in kept if k not in expected]
    wrong = [f"{k} {list(kept[k])} (expected {list(expected[k])})" for k in kept
             if k in expected and kept[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing, e.g. {missing[:SHOWN]}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors not in SegFormer-B5, e.g. {unexpected[:SHOWN]}")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape, e.g. {wrong[:SHOWN]}")
    if problems:
        raise ReleaseError(f"{path}: not the SSIW SegFormer-B5 release layout: " + "; ".join(problems))
    return dropped


def to_model_state(state: dict, net) -> dict:
    """Their tensors under our model's own parameter names (`net.` + transformers' spelling)."""
    import torch

    from trainer.model.segformer_keys import authors_to_v4, respell, spelling

    kept = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    own = net.state_dict()
    mapped = respell(authors_to_v4(kept), spelling(k.removeprefix("net.") for k in own))
    mapped = {f"net.{k}": v for k, v in mapped.items()}
    for name in own:  # counters the file lacked (see _optional)
        if name not in mapped and _optional(name):
            mapped[name] = torch.zeros((), dtype=torch.long)
    return mapped


def read_embeddings(path: Path, dim: int) -> np.ndarray:
    """(K, dim) float32, each row of unit length; the file may hold K x dim or dim x K."""
    p = Path(path)
    if not p.is_file():
        raise ReleaseError(f"{p}: embeddings file not found")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as e:
        raise ReleaseError(f"{p}: not a readable .npy array (truncated or another format): {e}") from e
    if arr.ndim != 2 or dim not in arr.shape or not np.issubdtype(arr.dtype, np.floating):
        raise ReleaseError(f"{p}: expected a float array of shape (K, {dim}) or ({dim}, K), got {arr.dtype} {arr.shape}")
    if arr.shape[1] != dim:
        arr = arr.T
    elif arr.shape[0] == dim and arr.shape[1] == dim:
        raise ReleaseError(f"{p}: shape {arr.shape} is ambiguous (as many labels as dimensions)")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ReleaseError(f"{p}: holds NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ReleaseError(f"{p}: row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros")
    return arr / norms


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_release(checkpoint: Path, embeddings: Path, out: Path, labels: Path | None = None,
                   encoder: str = CLIP_TEXT_ENCODER) -> dict:
    """Write the run folder `out` (checkpoints/step-0000000.pt, config.json, labels.txt, import.json)."""
    import torch

    from pipeline.safe_write import write_bytes_atomic as write_atomic
    from trainer.model.checkpoint import RunCheckpoint, RunSettings
    from trainer.model.label_space import LabelSpace
    from trainer.model.networks import build_model

    state = read_release_state(checkpoint)
    head = state.get("head.linear_pred.weight")
    dim = int(head.shape[0]) if head is not None and head.ndim == 4 else 512  # the head's output width
    with torch.device("meta"):  # shapes only: every tensor comes from their file (and 10x faster)
        net = build_model("segformer-b5", dim)
    dropped = check_layout(state, expected_layout(net), checkpoint)
    vectors = read_embeddings(embeddings, dim)
    names = read_label_names(labels, len(vectors)) if labels else universal_names()
    if len(names) != len(vectors):
        raise ReleaseError(f"{embeddings}: {len(vectors)} rows, but the MSeg universal taxonomy has {len(names)} "
                           f"classes; give --labels FILE with one name per row")

    result = net.load_state_dict(to_model_state(state, net), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys

    k = len(vectors)
    settings = RunSettings(model="segformer-b5", short_edge=720, crop=(720, 720), inference="authors")
    config = {"name": Path(out).name, **settings.model_dump(mode="json"),
              "imported": {"checkpoint": str(checkpoint), "embeddings": str(embeddings)}}
    # One column per release row; the checkpoint stores it through the label-space type like any run.
    label_space = LabelSpace([LABEL_SPACE_NAME], np.arange(k), vectors, {LABEL_SPACE_NAME: np.arange(k)},
                             encoder, names=list(names))
    ckpt = RunCheckpoint(net.state_dict(), {"log_tau": torch.tensor(math.log(TEMPERATURE))}, config, label_space,
                         step=0)
    out = Path(out)
    record = {"checkpoint": {"path": str(checkpoint), "bytes": Path(checkpoint).stat().st_size,
                             "sha256": _sha256(Path(checkpoint))},
              "embeddings": {"path": str(embeddings), "bytes": Path(embeddings).stat().st_size,
                             "sha256": _sha256(Path(embeddings)), "rows": k, "dim": dim},
              "labels": str(labels) if labels else "mseg-universal (shipped)",
              "encoder": encoder, "tensors": len(net.state_dict()), "left_out": sorted(dropped)}
    write_atomic(out / "config.json", json.dumps(config, indent=2).encode())
    write_atomic(out / "labels.txt", ("\n".join(names) + "\n").encode())
    write_atomic(out / "import.json", json.dumps(record, indent=2).encode())
    # Last: a checkpoint under its final name marks a finished import (a killed one is simply redone).
    path = ckpt.save(out / "checkpoints" / "step-0000000.pt")
    return {"run_dir": str(out), "checkpoint": str(path), "labels": k, "dim": dim, "left_out": len(dropped)}

