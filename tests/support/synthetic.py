"""Small synthetic shards in the shards/README.md layout, for tests and the stream benchmarks.

Each image is a few flat-coloured rectangles on a background; the label PNG holds the rectangle's
class, so a small model can learn it quickly. Records and members come from pipeline.shard_format
and the tar from the converter's writer, so these shards are shaped exactly like converted ones.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.convert.tario import DeterministicTarWriter
from pipeline.safe_write import atomic_path
from pipeline.shard_format import ShardRecord, box_embeddings_bytes, sample_members

# One colour per class: the image tells the class apart, so a tiny net can overfit it.
PALETTE = np.array(
    [[20, 20, 20], [220, 40, 40], [40, 200, 40], [40, 60, 220], [230, 220, 40], [200, 60, 200],
     [60, 210, 210], [240, 140, 30], [120, 120, 120], [250, 250, 250]],
    dtype=np.uint8,
)


@dataclass
class SyntheticSpec:
    dataset: str
    num_classes: int = 4
    supervision: str = "dense"  # dense | coarse | box
    samples: int = 8
    shards: int = 2
    size: tuple[int, int] = (48, 64)  # height, width
    fmt: str = "png"  # png | jpg
    box_dim: int | None = None  # write KEY.boxemb.npy with this dimension
    seed: int = 0
    split: str = "training"


def draw_sample(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Image (HxWx3 uint8), label (HxW uint8, class 0 = background) and boxes of the rectangles."""
    h, w = spec.size
    label = np.zeros((h, w), dtype=np.uint8)
    boxes = []
    for _ in range(2):
        cls = int(rng.integers(1, spec.num_classes))
        bh, bw = int(rng.integers(h // 4, h // 2 + 1)), int(rng.integers(w // 4, w // 2 + 1))
        y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        label[y0 : y0 + bh, x0 : x0 + bw] = cls
        boxes.append([x0, y0, x0 + bw, y0 + bh, cls])
    image = PALETTE[label % len(PALETTE)].astype(np.int16)
    image += rng.integers(-12, 13, size=image.shape, dtype=np.int16)  # a little texture
    image = np.clip(image, 0, 255).astype(np.uint8)
    if spec.supervision == "coarse":
        label[rng.random((h, w)) < 0.05] = 255  # unlabelled speckles, as coarse masks have
    return image, label, boxes


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _write_tar(final: Path, samples: Iterable[list[tuple[str, bytes]]]) -> Path:
    with atomic_path(final) as tmp:
        writer = DeterministicTarWriter(tmp)
        for members in samples:
            for name, data in members:
                writer.add(name, data)
        writer.close()
    return final


def _synthetic_sample(rng: np.random.Generator, spec: SyntheticSpec, index: int) -> list[tuple[str, bytes]]:
    image, label, boxes = draw_sample(rng, spec)
    key = f"{spec.dataset.replace('.', '_')}-{index:06d}"
    box = spec.supervision == "box"
    embeddings = box_embeddings_bytes(rng.standard_normal((len(boxes), spec.box_dim))) if box and spec.box_dim else None
    record = ShardRecord(
        dataset=spec.dataset, split=spec.split, supervision=spec.supervision, width=image.shape[1],
        height=image.shape[0], num_classes=spec.num_classes, ignore_index=255,
        classes_present=sorted(int(c) for c in np.unique(label) if c != 255), boxes=boxes if box else None,
        box_embedding_encoder="synthetic" if embeddings is not None else None, sources={"image": f"{key}.{spec.fmt}"},
    )
    encoded = _jpg(image) if spec.fmt == "jpg" else _png(image)
    return sample_members(key, spec.fmt, encoded, record, None if box else _png(label), embeddings)


def write_synthetic_dataset(root: Path, spec: SyntheticSpec) -> list[Path]:
    """Write spec.shards tars under root/<dataset>/ and return their paths."""
    rng = np.random.default_rng(spec.seed)
    folder = Path(root) / spec.dataset
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = -(-spec.samples // spec.shards)
    return [
        _write_tar(folder / f"{spec.split}-{s:06d}.tar",
                   (_synthetic_sample(rng, spec, i) for i in range(s * per_shard, min(spec.samples, (s + 1) * per_shard))))
        for s in range(spec.shards)
    ]


@dataclass
class TinyTable:
    """An in-memory embedding table with the attributes the trainer uses (labels, vectors, dim, rows_for)."""

    labels: list[str]
    vectors: np.ndarray
    lookup: dict[str, list[int]]
    encoder: str = "synthetic"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows_for(self, dataset: str) -> np.ndarray:
        if dataset not in self.lookup:
            raise KeyError(f"dataset {dataset!r} is not in the embedding table")
        return np.asarray(self.lookup[dataset], dtype=np.int64)

    def vectors_for(self, dataset: str) -> np.ndarray:
        return self.vectors[self.rows_for(dataset)]


def tiny_table(datasets: dict[str, int], dim: int = 16, shared: bool = True, seed: int = 0) -> TinyTable:
    """Random unit vectors; with `shared`, class i of every dataset maps to the same row i (one concept)."""
    rng = np.random.default_rng(seed)
    lookup: dict[str, list[int]] = {}
    labels: list[str] = []
    for name, k in datasets.items():
        rows = []
        for i in range(k):
            label = f"class_{i}" if shared else f"{name}/class_{i}"
            if label not in labels:
                labels.append(label)
            rows.append(labels.index(label))
        lookup[name] = rows
    vectors = rng.standard_normal((len(labels), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return TinyTable(labels=labels, vectors=vectors, lookup=lookup)


def photo_like_images(folder: Path, n: int, short: int = 1080, seed: int = 0) -> list[tuple[str, bytes, bytes]]:
    """Smooth colour fields with texture (JPEG sizes like photos'), `short` px short edge, and 19-class
    label PNGs; written as files (for a file-per-image baseline) and returned as (key, jpg, png)."""

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w = int(rng.choice([short * 4 // 3, short * 3 // 2, short * 16 // 9]))
        yy, xx = np.mgrid[0:short, 0:w].astype(np.float32)
        base = np.stack([np.sin(xx / rng.uniform(40, 200) + c) * np.cos(yy / rng.uniform(40, 200)) for c in range(3)], -1)
        img = np.clip(127 + 90 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        label = ((xx // 200 + yy // 200) % 19).astype(np.uint8)
        key = f"img-{i:04d}"
        jpg, png = _jpg(img), _png(label)
        (Path(folder) / f"{key}.jpg").write_bytes(jpg)
        (Path(folder) / f"{key}.label.png").write_bytes(png)
        out.append((key, jpg, png))
    return out


def write_dense_shard(path: Path, items, dataset: str, num_classes: int = 19, split: str = "training") -> Path:
    """One tar of dense samples from (key, jpg bytes, label png bytes)."""
    from PIL import Image

    def members(key: str, jpg: bytes, png: bytes) -> list[tuple[str, bytes]]:
        label = np.asarray(Image.open(io.BytesIO(png)))
        record = ShardRecord(
            dataset=dataset, split=split, supervision="dense", width=label.shape[1], height=label.shape[0],
            num_classes=num_classes, ignore_index=255, classes_present=sorted(int(c) for c in np.unique(label) if c != 255),
            boxes=None, box_embedding_encoder=None, sources={"image": f"{key}.jpg", "annotation": f"{key}.label.png"},
        )
        return sample_members(key, "jpg", jpg, record, png)

    return _write_tar(Path(path), (members(*item) for item in items))


def write_tiny_table(path: Path, table: TinyTable) -> Path:
    """Store a TinyTable in the embedding-table format (pipeline.embed.table), e.g. for `ssiw train` tests."""
    from pipeline.embed.table import LookupRow, write_table

    lookup = [LookupRow(name, i, f"class {i}", table.labels[row], int(row))
              for name, rows in table.lookup.items() for i, row in enumerate(rows)]
    return write_table(Path(path), table.labels, [f"An image of {x}." for x in table.labels], table.vectors,
                       table.encoder, "sentence", "synthetic", lookup)
