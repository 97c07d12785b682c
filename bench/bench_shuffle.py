"""Are consecutive training draws as mixed as a random order? Keys of real datasets come in runs
(ADE20K train is ordered by scene), so shards cut in key order hold one scene each.

ADE-like keys (20,000 samples in scene runs, sizes skewed like ADE's scene categories) are planned
with the converter's own order (`pipeline.convert.order`) and cut (`plan.cut_shards`) into tars of
tiny samples, once in the old key order and once in the seeded random order shards are written in
now. Each set is read through the trainer's own stream (`trainer.data.stream.raw_samples`, resampled
shards and a shuffle buffer, as training reads them), and we count how often two consecutive draws
share a scene, against the rate for independent uniform draws (sum of squared scene shares).
Target: at most 1.5 times random, with the trainer's default buffer.

`python -m bench shuffle`; `make bench` runs every bench_*.py.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

SAMPLES = 20_000
SCENES = 150
DRAWS = 20_000
TARGET = 1.5


def ade_like_keys(
    seed: int = 0, samples: int = SAMPLES, scenes: int = SCENES
) -> tuple[list[str], dict[str, int]]:
    """Keys in scene runs: scene sizes from a lognormal (a few big scenes, a long tail)."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, scenes)
    sizes = np.maximum(1, np.round(weights / weights.sum() * samples)).astype(int)
    keys, scene = [], {}
    for g, n in enumerate(sizes):
        for _ in range(n):
            key = f"ADE_train_{len(keys) + 1:08d}"
            keys.append(key)
            scene[key] = g
    return keys, scene


def random_rate(scene: dict[str, int]) -> float:
    counts = np.bincount(list(scene.values()))
    p = counts / counts.sum()
    return float((p**2).sum())


def write_shards(folder: Path, keys: list[str], per_shard: int, shuffled: bool) -> list[str]:
    """Tars as the converter cuts them: its order, its greedy cut, its deterministic tar writer."""
    from types import SimpleNamespace

    from pipeline.convert.order import in_shard_order
    from pipeline.convert.plan import cut_shards
    from pipeline.convert.readers.base import WorkItem
    from pipeline.convert.tario import DeterministicTarWriter

    items = [WorkItem(key=k, image="") for k in keys]
    if shuffled:
        items = in_shard_order(items, "ade20k-150", "training")
    size = 1000
    tax = SimpleNamespace(name="ade20k-150")
    plans = cut_shards(tax, "training", items, [size] * len(items), per_shard * size)
    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    for plan in plans:
        path = folder / f"training-{plan.index:06d}.tar"
        writer = DeterministicTarWriter(path)
        for item in plan.items:
            writer.add(f"{item.key}.json", json.dumps({"key": item.key}).encode())
        writer.close()
        urls.append(str(path))
    return urls


def same_scene_rate(
    urls: list[str], scene: dict[str, int], buffer: int, seed: int = 0, draws: int = DRAWS
) -> float:
    from trainer.data.stream import raw_samples

    stream = raw_samples(urls, seed=seed, resampled=True, shuffle_buffer=buffer)
    groups = np.fromiter((scene[next(stream)["__key__"]] for _ in range(draws)), dtype=np.int64, count=draws)
    return float((groups[1:] == groups[:-1]).mean())


def run() -> list[dict]:
    from trainer.config import TrainConfig

    default_buffer = TrainConfig.model_fields["shuffle_buffer"].default
    keys, scene = ade_like_keys()
    base = random_rate(scene)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shards in (1, 100):
            per_shard = -(-len(keys) // shards)
            for order in ("key", "seeded random"):
                urls = write_shards(Path(tmp) / f"{shards}-{order}", keys, per_shard, order != "key")
                for buffer in sorted({256, default_buffer}):
                    rate = same_scene_rate(urls, scene, buffer)
                    rows.append(
                        {
                            "shard order": order,
                            "shards": len(urls),
                            "buffer": buffer if buffer != default_buffer else f"{buffer} (default)",
                            "same-scene rate": round(rate, 4),
                            "random order": round(base, 4),
                            "x random": round(rate / base, 2),
                            "target": f"<= {TARGET}" if order != "key" and buffer == default_buffer else "",
                        }
                    )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
