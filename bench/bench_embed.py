"""Label encoding speed on CPU: labels per second for MiniLM and for open_clip ViT-B-32 (random
weights: the speed does not depend on their values), with sentence-mode texts like the real ones.

`python -c "from bench.bench_embed import run; print(run())"`; `make bench` runs every bench_*.py.
"""

from __future__ import annotations

import time

ENCODERS = ("minilm", "open_clip:ViT-B-32:random")
NOUNS = [
    "cat",
    "dog",
    "bus",
    "truck",
    "road",
    "sky",
    "tree",
    "chair",
    "lamp",
    "bottle",
    "river",
    "bridge",
    "fence",
    "bicycle",
    "horse",
    "table",
]
KINDS = ["small", "large", "common", "wild", "domestic", "wooden", "metal", "tall", "flat", "round"]


def label_texts(n: int) -> list[str]:
    """n distinct sentences shaped like "An image of X. A X is a ... ." (about 20 tokens each)."""
    texts = []
    for i in range(n):
        noun, kind, other = (
            NOUNS[i % len(NOUNS)],
            KINDS[i // len(NOUNS) % len(KINDS)],
            NOUNS[(i * 7 + 3) % len(NOUNS)],
        )
        texts.append(
            f"An image of {kind} {noun} {i}. A {kind} {noun} is an object often seen near a {other}, "
            f"photographed outdoors or indoors in everyday scenes."
        )
    return texts


def run(n: int = 256, batch_size: int = 64) -> list[dict]:
    import torch

    from pipeline.embed.encoders import get_encoder

    texts = label_texts(n)
    rows = []
    for spec in ENCODERS:
        encoder = get_encoder(spec, "cpu")
        start = time.perf_counter()
        encoder.model()
        load_s = time.perf_counter() - start
        encoder.encode(texts[:batch_size], batch_size=batch_size)  # warm-up
        start = time.perf_counter()
        vectors = encoder.encode(texts, batch_size=batch_size)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "encoder": spec,
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "labels": n,
                "dim": int(vectors.shape[1]),
                "load_s": round(load_s, 2),
                "encode_s": round(seconds, 2),
                "labels_per_s": round(n / seconds, 1),
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
