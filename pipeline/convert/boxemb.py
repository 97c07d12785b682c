"""Optional CLIP image embeddings of box crops, stored as KEY.boxemb.npy (float16 [num_boxes, D]).

Spec: `open_clip:MODEL:PRETRAINED`. MODEL is an open_clip model name, or a path to a model config
JSON (registered under its file stem, handy for small test models). PRETRAINED is an open_clip
pretrained tag, a path to a local checkpoint, or `random` for random weights (tests only: every
worker seeds the same, but the vectors mean nothing). Loaded by pipeline.embed.encoders.load_open_clip,
the same loader as the text encoder. Without this option the trainer falls back to
the box class's text embedding.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from pipeline.convert.readers.base import BadSample, Sample
from pipeline.errors import SsiwError

BATCH = 64


class BoxEmbeddingError(SsiwError):
    """A bad --box-embeddings spec, or a model or weights that cannot be loaded."""


def parse_spec(spec: str) -> tuple[str, str]:
    parts = spec.split(":", 2)
    if len(parts) != 3 or parts[0] != "open_clip" or not parts[1] or not parts[2]:
        raise BoxEmbeddingError(
            f"--box-embeddings {spec!r}: expected open_clip:MODEL:PRETRAINED, e.g. open_clip:ViT-B-32:laion2b_s34b_b79k"
        )
    return parts[1], parts[2]


@lru_cache(maxsize=2)
def _load(spec: str):
    """One model per worker process, loaded on first use."""
    from pipeline.embed.encoders import EncoderError, load_open_clip

    try:
        return load_open_clip(*parse_spec(spec))
    except EncoderError as e:
        raise BoxEmbeddingError(f"--box-embeddings {spec!r}: {e}") from e


def box_embedder(spec: str) -> Callable[[Sample], np.ndarray]:
    model, preprocess, dim = _load(spec)

    def embed(sample: Sample) -> np.ndarray:
        import torch
        from PIL import Image

        boxes = sample.boxes or []
        if not boxes:
            return np.zeros((0, dim), dtype=np.float16)
        try:
            image = Image.open(io.BytesIO(sample.image_bytes)).convert("RGB")
        except Exception as e:  # PIL raises many types for corrupt data
            raise BadSample(sample.sources.get("image", sample.key), f"cannot decode image for box crops: {e}") from e
        crops = [preprocess(image.crop(tuple(int(v) for v in box[:4]))) for box in boxes]
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), BATCH):
                feats = model.encode_image(torch.stack(crops[i : i + BATCH]))
                out.append(torch.nn.functional.normalize(feats.float(), dim=-1))
        return torch.cat(out).numpy().astype(np.float16)

    return embed
