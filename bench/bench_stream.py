"""Stream speed: samples per second per core of the WebDataset stream (decode, augment, collate at
640x640 from 1080-short-edge JPEGs) next to a map-style file-per-image Dataset doing the same
augmentations the plain way (full decode, full resize, then crop), plus resident memory over a long run.

`python -c "from bench.bench_stream import run; print(run())"`; `make bench` runs every bench_*.py.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

CROP = 640
SHORT = 1080


def _baseline_dataset(folder: Path, keys: list[str]):
    """The usual map-style Dataset: open the files, decode fully, resize the whole image, then crop."""
    import torch
    from PIL import Image, ImageFilter
    from torchvision.transforms import ColorJitter

    class FileDataset(torch.utils.data.Dataset):
        def __init__(self):
            self.jitter = ColorJitter(0.3, 0.3, 0.3)
            self.rng = np.random.default_rng(0)

        def __len__(self):
            return 10**9

        def __getitem__(self, i):
            key = keys[i % len(keys)]
            image = Image.open(folder / f"{key}.jpg").convert("RGB")
            label = Image.open(folder / f"{key}.label.png")
            f = SHORT * self.rng.uniform(0.5, 2.0) / min(image.size)
            size = (round(image.size[0] * f), round(image.size[1] * f))
            image, label = image.resize(size, Image.BILINEAR), label.resize(size, Image.NEAREST)
            x = int(self.rng.integers(0, max(1, size[0] - CROP) + 1))
            y = int(self.rng.integers(0, max(1, size[1] - CROP) + 1))
            image, label = image.crop((x, y, x + CROP, y + CROP)), label.crop((x, y, x + CROP, y + CROP))
            if self.rng.random() < 0.5:
                image, label = image.transpose(Image.FLIP_LEFT_RIGHT), label.transpose(Image.FLIP_LEFT_RIGHT)
            image = self.jitter(image)
            if self.rng.random() < 0.2:
                image = image.filter(ImageFilter.GaussianBlur(self.rng.uniform(0.1, 2.0)))
            return (torch.from_numpy(np.array(image)).permute(2, 0, 1),
                    torch.from_numpy(np.array(label).astype(np.int64)))

    return FileDataset()


def _rate(iterator, samples: int, batch: int, rss_every: int = 0) -> tuple[float, list[int]]:
    import psutil

    proc = psutil.Process()
    rss = []
    next(iterator)  # warm-up (imports, first shard open)
    t0 = time.perf_counter()
    n = 0
    while n < samples:
        next(iterator)
        n += batch
        if rss_every and (n // batch) % rss_every == 0:
            rss.append(proc.memory_info().rss)
    return n / (time.perf_counter() - t0), rss


def run(samples: int = 64, images: int = 12, memory_samples: int = 400, batch: int = 4) -> list[dict]:
    """Rows: stream and baseline samples/s on one core, their ratio, and RSS at the start and end of a long run."""
    import torch
    import torch.utils.data

    from tests.support.synthetic import photo_like_images, write_dense_shard
    from trainer.data.augment import AugmentParams
    from trainer.data.stream import Source, StreamSpec, iterate_batches

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        items = photo_like_images(folder, images)
        (folder / "bench").mkdir()
        write_dense_shard(folder / "bench" / "training-000000.tar", items, "bench")
        aug = AugmentParams(short_edge=SHORT, crop=(CROP, CROP))
        source = [Source("bench", [str(folder / "bench" / "training-000000.tar")])]

        def stream(batches):
            return iterate_batches(StreamSpec(source, batch, batches, aug, shuffle_buffer=8))

        stream_rate, _ = _rate(stream(samples // batch + 2), samples, batch)
        loader = torch.utils.data.DataLoader(_baseline_dataset(folder, [k for k, _, _ in items]), batch_size=batch,
                                             num_workers=0)
        base_rate, _ = _rate(iter(loader), samples, batch)
        _, rss = _rate(stream(memory_samples // batch + 2), memory_samples, batch, rss_every=5)
    mib = 1024 * 1024
    quarter = max(1, len(rss) // 4)
    return [
        {"bench": "stream", "metric": "webdataset stream, 1 core", "value": round(stream_rate, 2), "unit": "samples/s"},
        {"bench": "stream", "metric": "map-style file Dataset, 1 core", "value": round(base_rate, 2), "unit": "samples/s"},
        {"bench": "stream", "metric": "speed-up (target >= 1.5)", "value": round(stream_rate / base_rate, 2), "unit": "x"},
        {"bench": "stream", "metric": f"RSS, first quarter of {memory_samples} samples", "value": round(np.mean(rss[:quarter]) / mib, 1), "unit": "MiB"},
        {"bench": "stream", "metric": f"RSS, last quarter of {memory_samples} samples", "value": round(np.mean(rss[-quarter:]) / mib, 1), "unit": "MiB"},
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['metric']:<48} {row['value']:>10} {row['unit']}")
