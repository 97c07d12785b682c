"""The mixed training stream: one WebDataset pipeline per dataset, mixed into batches by ratio.

Determinism (for --resume): every batch has a global index j within an epoch. Its dataset counts
come from a fixed sequence, and each sample's augmentation draws from an rng seeded by
(seed, epoch, rank, j, position). Skipping the first k batches therefore only reads raw tar
members, never decodes them. Raw samples come from per-(rank, worker) shard streams, so the same
number of loader workers gives the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput, NotFound
from pipeline.shard_format import SampleError, Supervision
from trainer.augment import AugmentParams, decode_sample

# Raw samples (encoded bytes) held per dataset per loader worker. Shards are random samples of their
# split (the converter writes them in seeded random order), so the buffer mostly mixes shards read
# again in a later epoch and older key-ordered shards; `python -m bench shuffle` measures it. Memory:
# about this many encoded images and labels, e.g. ~150 MB for ADE-sized, ~1 GB for 1080p JPEGs.
DEFAULT_SHUFFLE_BUFFER = 1024


@dataclass
class Source:
    name: str
    urls: list[str]
    ratio: float = 1.0
    rows: np.ndarray | None = None  # label-table row of each class index
    supervision: str | None = None  # treat pixel labels as "dense" or "coarse" whatever the shards say


def find_shards(shard_dir: str | Path, dataset: str, split: str) -> list[str]:
    """The tars of one dataset split, e.g. shards/ade20k-150/training-000000.tar or s3://bucket/prefix/..."""
    from pipeline import storage

    shard_dir = storage.as_location(shard_dir)
    urls = [str(u) for u in storage.glob(shard_dir, f"{dataset}/{split}-*.tar")]
    if not urls:
        raise NotFound(f"no shards match {storage.join(shard_dir, dataset, f'{split}-*.tar')}")
    return urls


def _open_shards(sources: Iterator[dict]) -> Iterator[dict]:
    """webdataset stage: open each shard URL, local or in object storage, through fsspec (pipeline.storage)."""
    from pipeline import storage

    for source in sources:
        with storage.open_read(source["url"]) as stream:
            yield {**source, "stream": stream}


def tar_samples() -> list:
    """webdataset stages from shard URLs to raw samples (dict of member bytes per key)."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    return [_open_shards, tar_file_expander, group_by_keys]


def batch_counts(ratios: list[float], batch_size: int) -> Iterator[list[int]]:
    """Samples per dataset for batch 0, 1, 2, ...: each sample slot goes to the dataset furthest
    behind its share, so every batch is as close to the ratios as integers allow."""
    r = np.asarray(ratios, dtype=np.float64)
    if (r < 0).any() or r.sum() <= 0:
        raise BadInput(f"dataset ratios must be non-negative with a positive sum, got {ratios}")
    r = r / r.sum()
    given = np.zeros(len(r))
    n = 0
    while True:
        counts = [0] * len(r)
        for _ in range(batch_size):
            n += 1
            d = int(np.argmax(n * r - given))
            given[d] += 1
            counts[d] += 1
        yield counts


def _mix_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def raw_samples(urls: list[str], seed: int, resampled: bool, shuffle_buffer: int) -> Iterator[dict]:
    """Endless raw samples (bytes per member) of one dataset for this rank and worker."""
    import random

    import webdataset as wds

    if resampled:
        # Each (rank, worker) draws shards with its own seed: no split needed, no epoch boundary.
        shards = wds.ResampledShards(urls, seed=seed, worker_seed=lambda: 0, deterministic=True)
        stages = [shards]
    else:
        stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker]
    stages += tar_samples()
    if shuffle_buffer > 1:
        stages.append(wds.shuffle(shuffle_buffer, initial=min(shuffle_buffer, 16), rng=random.Random(seed)))
    pipeline = wds.DataPipeline(*stages)
    while True:
        empty = True
        for sample in pipeline:
            empty = False
            yield sample
        if empty:
            raise NotFound(f"shards yield no samples for this worker: {urls[:3]}")


def collate(samples: list[dict], names: list[str], rows: dict[str, np.ndarray | None]) -> dict:
    import torch

    return {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])).permute(0, 3, 1, 2).contiguous(),
        "target": torch.from_numpy(np.stack([s["target"] for s in samples])),
        "dataset_index": torch.tensor([names.index(s["source"]) for s in samples], dtype=torch.long),
        "supervision": torch.tensor([Supervision(s["supervision"]).code for s in samples], dtype=torch.long),
        "rows": [None if rows.get(s["source"]) is None else torch.from_numpy(rows[s["source"]]) for s in samples],
        "boxes": [torch.from_numpy(s["boxes"]) for s in samples],
        "box_classes": [torch.from_numpy(s["box_classes"]) for s in samples],
        "box_targets": [None if s["box_targets"] is None else torch.from_numpy(s["box_targets"]) for s in samples],
        "keys": [s["key"] for s in samples],
        "datasets": [s["source"] for s in samples],
    }


def _iterable_base():
    import torch.utils.data

    return torch.utils.data.IterableDataset


@dataclass
class StreamSpec:
    sources: list[Source]
    batch_size: int
    batches: int  # per rank per epoch
    augment: AugmentParams = field(default_factory=AugmentParams)
    seed: int = 0
    epoch: int = 0
    rank: int = 0
    skip_batches: int = 0
    resampled: bool = True
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER


def iterate_batches(spec: StreamSpec, worker: int = 0, num_workers: int = 1) -> Iterator[dict]:
    """This worker's share of batches j = worker, worker + num_workers, ... of the epoch."""
    names = [s.name for s in spec.sources]
    rows = {s.name: s.rows for s in spec.sources}
    streams = [
        raw_samples(s.urls, _mix_seed(spec.seed, spec.epoch, spec.rank, worker, d), spec.resampled,
                    spec.shuffle_buffer)
        for d, s in enumerate(spec.sources)
    ]
    counts_seq = batch_counts([s.ratio for s in spec.sources], spec.batch_size)
    for j in range(spec.batches):
        counts = next(counts_seq)
        if j % num_workers != worker:
            continue
        raws = [(d, next(streams[d])) for d, c in enumerate(counts) for _ in range(c)]
        if j < spec.skip_batches:
            continue  # resume: the raw samples are consumed, not decoded
        samples = []
        for i, (d, raw) in enumerate(raws):
            rng = np.random.default_rng(_mix_seed(spec.seed, spec.epoch, spec.rank, j, i))
            s = decode_sample(raw, rng, spec.augment)
            s["source"] = names[d]
            override = spec.sources[d].supervision
            if override and s["supervision"] != override:
                if s["supervision"] is Supervision.box:
                    raise SampleError(s["key"], f"box samples cannot be trained as {override!r}")
                s["supervision"] = override
            if s["dataset"] and s["dataset"] != names[d]:
                raise SampleError(s["key"], f"record says dataset {s['dataset']!r} but it came from {names[d]!r}'s shards")
            samples.append(s)
        yield collate(samples, names, rows)


class MixedStream(_iterable_base()):
    """torch IterableDataset of whole mixed batches (use DataLoader(batch_size=None))."""

    def __init__(self, spec: StreamSpec):
        super().__init__()
        self.spec = spec

    def __iter__(self):
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        if info is None:
            return iterate_batches(self.spec)
        return iterate_batches(self.spec, info.id, info.num_workers)

    def __len__(self) -> int:
        return self.spec.batches - self.spec.skip_batches


def make_loader(spec: StreamSpec, num_workers: int = 0, pin_memory: bool = False):
    import torch.utils.data

    return torch.utils.data.DataLoader(
        MixedStream(spec), batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=False, prefetch_factor=4 if num_workers else None,
    )
