"""The run checkpoint: one contract for every writer (training, `ssiw import-ssiw`) and every reader
(`--resume`, `init:`, `ssiw segment`, `ssiw eval`, `ssiw pseudo-label`).

A checkpoint or run folder may be local or in object storage (`s3://bucket/prefix/run`, through
pipeline.storage). An object-store checkpoint is saved as every file is (pipeline.safe_write: written
whole to a local temp, then uploaded, so no reader sees half of one under its final name) and read
from a local temp copy.

A checkpoint is data, not code: it holds only tensors and plain values (dict, list, str, int, float,
bool, None) and is read with torch.load(weights_only=True), so loading a file cannot run anything.
save() converts numpy arrays, tuples and paths to those types and refuses anything else; load()
refuses a file that asks the unpickler for any other object, naming the file and the object.
Checkpoints written before this contract hold numpy arrays (the label space): those, and only
those, are let through on reading.
"""

from __future__ import annotations

import fnmatch
import pickle
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from pipeline import storage
from pipeline.errors import BadInput, NotFound
from pipeline.safe_write import atomic_path
from trainer.config import config_default
from trainer.model.label_space import LabelSpace

REQUIRED = ("model", "config", "label_space", "step")
TRAINING_KEYS = ("optimizer", "scheduler", "epoch", "batch_in_epoch", "torch_rng")


class RunSettings(BaseModel):
    """The config values inference needs. A run's saved config may lack some (an imported release
    saves only these; older runs), and then the training config's defaults apply."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str
    width: int = config_default("width")
    short_edge: int = config_default("short_edge")
    crop: tuple[int, int] = config_default("crop")
    inference: str = "trainer"  # "authors": the SSIW release's own procedure (trainer/predict/authors.py)
    taxonomies: list[str] = []  # the taxonomy folders the run trained with (class names for eval/segment)

    @field_validator("taxonomies", mode="before")
    @classmethod
    def _folder_list(cls, value):  # the config holds one folder, a list of them, or nothing
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


@dataclass
class TrainingState:
    """What `--resume` needs beyond the network; an imported release has none."""

    optimizer: dict
    scheduler: dict
    epoch: int
    batch_in_epoch: int
    torch_rng: object  # torch.ByteTensor from torch.get_rng_state()
    samples_read: int = 0
    samples_skipped: int = 0


@dataclass
class RunCheckpoint:
    network: dict  # the network's state dict (name -> tensor)
    criterion: dict  # the loss module's state dict: the learned temperature log_tau, the box head
    config: dict  # the run's config as plain values (TrainConfig's JSON, or an import's own few fields)
    label_space: LabelSpace
    step: int
    training: TrainingState | None = None

    @property
    def settings(self) -> RunSettings:
        return RunSettings.model_validate(self.config)

    @property
    def dim(self) -> int:
        """Width of the network's output embeddings (and of every label vector)."""
        return int(np.asarray(self.label_space.vectors).shape[1])

    @property
    def encoder(self) -> str | None:
        return self.label_space.encoder

    @property
    def log_tau(self) -> float:
        return float(self.criterion["log_tau"])

    def to_state(self) -> dict:
        """The file's layout (the keys every checkpoint of this project has used), as plain values."""
        state = {"model": self.network, "criterion": self.criterion, "step": int(self.step),
                 "config": self.config, "label_space": self.label_space.to_dict()}
        if self.training is not None:
            t = self.training
            state.update(optimizer=t.optimizer, scheduler=t.scheduler, epoch=t.epoch, batch_in_epoch=t.batch_in_epoch,
                         torch_rng=t.torch_rng, samples_read=t.samples_read, samples_skipped=t.samples_skipped)
        return plain(state, "checkpoint")

    def save(self, path: storage.Location) -> storage.Location:
        import torch

        try:
            state = self.to_state()
        except BadInput as e:
            raise BadInput(f"{path}: not saved: {e}") from None
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def from_state(cls, state: dict, source: Path | str = "checkpoint") -> RunCheckpoint:
        if not isinstance(state, dict):
            raise BadInput(f"{source}: not an ssiw checkpoint (holds a {type(state).__name__}, not a dict)")
        for key in REQUIRED:
            if key not in state:
                raise BadInput(f"{source}: not an ssiw checkpoint (no {key!r})")
        if not isinstance(state["config"], dict) or not isinstance(state["label_space"], dict):
            raise BadInput(f"{source}: not an ssiw checkpoint (config and label_space must be mappings)")
        training = None
        if all(k in state for k in TRAINING_KEYS):
            training = TrainingState(state["optimizer"], state["scheduler"], int(state["epoch"]),
                                     int(state["batch_in_epoch"]), state["torch_rng"],
                                     int(state.get("samples_read", 0)), int(state.get("samples_skipped", 0)))
        return cls(state["model"], state.get("criterion") or {}, state["config"],
                   LabelSpace.from_dict(state["label_space"]), int(state["step"]), training)

    @classmethod
    def load(cls, path: storage.Location) -> RunCheckpoint:
        """A checkpoint file, or a run folder's newest checkpoint (local or s3://)."""
        p = resolve_checkpoint(path)
        if not storage.is_remote(p):
            return cls.from_state(_read(p), p)
        with tempfile.TemporaryDirectory(prefix="ssiw-checkpoint-") as folder:
            local = storage.download(p, Path(folder) / storage.name(p))
            return cls.from_state(_read(local, shown=p), p)


def plain(value, where: str):
    """`value` with numpy arrays as tensors, numpy scalars as numbers, tuples as lists and paths as
    strings; anything else that is not a tensor or plain value is refused (it could not be read back
    with weights_only=True)."""
    import torch

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise BadInput(f"{where}: a numpy array of dtype {value.dtype} cannot be stored in a checkpoint")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise BadInput(f"{where}: key {k!r} ({type(k).__name__}) cannot be stored in a checkpoint")
            out[k] = plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise BadInput(f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored in a "
                   "checkpoint (only tensors and plain values: dict, list, str, int, float, bool, None)")


def _legacy_numpy_globals() -> list:
    """What a numpy array pickles as (checkpoints before this contract stored the label space so)."""
    reconstruct = np.ndarray(0).__reduce__()[0]
    numeric = [type(np.dtype(c)) for c in "?bBhHiIlLqQefdg"]
    return [reconstruct, np.ndarray, np.dtype, *numeric]


def _read(p: Path, shown: storage.Location | None = None) -> dict:
    """torch.load(weights_only=True) of a local file; errors name `shown` (the object it was fetched
    from) when given."""
    import torch

    where = shown or p
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BadInput(f"{where}: refused: it asks for {_refused_object(e)}, not only tensors and plain values; "
                       "checkpoints are read with torch.load(weights_only=True) so that opening one cannot run "
                       "code") from None
    except Exception as e:  # torch.load raises many types for a damaged or foreign file (zip, EOF, ...)
        raise BadInput(f"{where}: not a readable checkpoint: {e}") from e


def _refused_object(error: Exception) -> str:
    """'the Python object posix.system' out of torch's weights-only message, which is long."""
    text = str(error)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"the Python object {found.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"a Python object ({lines[-1] if lines else type(error).__name__})"


CHECKPOINT_NAMES = "step-*.pt"  # step-0000060.pt: zero-padded, so the newest sorts last


def latest_checkpoint(run_dir: storage.Location) -> storage.Location | None:
    """The newest checkpoint of a run folder, local (a Path) or s3:// (a URL); None when it has none.
    A temp a save left behind (`step-*.pt.tmp-*`) is never one."""
    folder = storage.join(run_dir, "checkpoints")
    found = sorted(n for n in storage.list_files(folder) if fnmatch.fnmatchcase(n, CHECKPOINT_NAMES))
    return storage.join(folder, found[-1]) if found else None


def resolve_checkpoint(path: storage.Location) -> storage.Location:
    """A checkpoint file as given, or a run folder's newest one (a Path, or a URL for s3://)."""
    p = storage.as_location(path)
    if storage.is_file(p):
        return p
    if storage.exists(p):  # a folder, or for s3:// a prefix holding objects
        found = latest_checkpoint(p)
        if found is None:
            raise NotFound(f"{p}: no checkpoints/step-*.pt in this run folder")
        return found
    raise NotFound(f"{p}: checkpoint not found")


def run_folder_of(path: storage.Location) -> storage.Location:
    """The run folder of a checkpoint file (<run>/checkpoints/step-N.pt), or the run folder given."""
    p = storage.as_location(path)
    return storage.parent(storage.parent(p)) if storage.is_file(p) else p
