"""The mixed training stream: one WebDataset pipeline per dataset, mixed into batches by ratio.

Balance: the slots of each *global* batch (batch size x ranks) are given to datasets by ratio, then
cut into one slice per rank, so every optimizer step sees every dataset in its share whenever the
global batch has room (the paper: 2 images per GPU, 80 GPUs, 9 datasets).

Determinism (for --resume): every batch has a global index j within an epoch. Its dataset counts
come from a fixed sequence, and each sample's augmentation draws from an rng seeded by
(seed, epoch, rank, j, position). Skipping the first k batches therefore only reads raw tar
members, never decodes them. Raw samples come from per-(rank, worker) shard streams, so the same
number of loader workers gives the same batches.

Bad samples: a sample that cannot be decoded is replaced in its batch by a blank one (black image,
every pixel ignored, no boxes), which adds nothing to any loss. The batch keeps its size, so ranks
stay in step and a resumed run skips the same raw samples without decoding them. Samples the shard
reader (pipeline.shards.read) cannot give at all (a member failing its CRC32, a broken or cut-short
tar) never reach a batch; the next raw sample takes their place. Each batch carries the samples
skipped while it was read (`skipped`, both kinds) and how many raw samples it read (`read`, skipped
ones included), for the trainer's accounting and limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import BadInput, NotFound
from pipeline.shard_format import SampleError, Supervision
from pipeline.shards.read import SkippedSample, expand_shards
from trainer.data.augment import AugmentParams, DecodedSample, decode_sample
from trainer.data.subsample import subsample

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
    held_out: np.ndarray | None = None  # class indices whose pixels become ignore and whose boxes are dropped
    fraction: float = 1.0  # share of the split's samples trained on: a seeded subset (trainer/data/subsample.py)
    subsample_seed: int = 0
    require_box_embeddings: bool = False  # box samples must carry CLIP image embeddings (KEY.boxemb.npy)


def slot_sequence(ratios: list[float], slots: int) -> Iterator[list[int]]:
    """Dataset index of each of `slots` sample slots for batch 0, 1, 2, ...: each slot goes to the
    dataset furthest behind its share, so every batch is as close to the ratios as integers allow
    and consecutive slots cycle through the datasets."""
    r = np.asarray(ratios, dtype=np.float64)
    if (r < 0).any() or r.sum() <= 0:
        raise BadInput(f"dataset ratios must be non-negative with a positive sum, got {ratios}")
    r = r / r.sum()
    given = np.zeros(len(r))
    n = 0
    while True:
        order = []
        for _ in range(slots):
            n += 1
            d = int(np.argmax(n * r - given))
            given[d] += 1
            order.append(d)
        yield order


def batch_counts(ratios: list[float], batch_size: int, world: int = 1, rank: int = 0) -> Iterator[list[int]]:
    """Samples per dataset in this rank's batch 0, 1, 2, ...: the global batch (batch_size x world
    slots) is balanced as a whole, and rank r takes slots r*batch_size .. (r+1)*batch_size - 1."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    for order in slot_sequence(ratios, batch_size * world):
        mine = order[rank * batch_size : (rank + 1) * batch_size]
        yield np.bincount(mine, minlength=len(ratios)).tolist()


def _mix_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def raw_samples(urls: list[str], seed: int, resampled: bool, shuffle_buffer: int,
                on_skip=None) -> Iterator[dict]:
    """Endless raw samples (bytes per member) of one dataset for this rank and worker, read through
    pipeline.shards.read: samples it cannot give are reported to on_skip (a SkippedSample) and the
    stream goes on."""
    import random

    import webdataset as wds

    report = on_skip or (lambda skipped: None)
    if resampled:
        # Each (rank, worker) draws shards with its own seed: no split needed, no epoch boundary.
        shards = wds.ResampledShards(urls, seed=seed, worker_seed=lambda: 0, deterministic=True)
        stages = [shards]
    else:
        stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker]
    stages += [lambda src: expand_shards(src, report, max_empty=3 * len(urls) + 10)]
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


def drop_held_out(sample: DecodedSample, held: np.ndarray | None) -> DecodedSample:
    """Held-out classes leave no trace in the targets: their pixels become ignore, their boxes go."""
    if held is None or len(held) == 0:
        return sample
    sample.target[np.isin(sample.target, held)] = -1
    keep = ~np.isin(sample.box_classes, held)
    if not keep.all():
        sample.boxes, sample.box_classes = sample.boxes[keep], sample.box_classes[keep]
        if sample.box_targets is not None:
            sample.box_targets = sample.box_targets[keep]
    return sample


def collate(samples: list[DecodedSample], names: list[str], rows: dict[str, np.ndarray | None]) -> dict:
    import torch

    return {
        "image": torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).contiguous(),
        "target": torch.from_numpy(np.stack([s.target for s in samples])),
        "dataset_index": torch.tensor([names.index(s.source) for s in samples], dtype=torch.long),
        "supervision": torch.tensor([Supervision(s.supervision).code for s in samples], dtype=torch.long),
        "rows": [None if rows.get(s.source) is None else torch.from_numpy(rows[s.source]) for s in samples],
        "boxes": [torch.from_numpy(s.boxes) for s in samples],
        "box_classes": [torch.from_numpy(s.box_classes) for s in samples],
        "box_targets": [None if s.box_targets is None else torch.from_numpy(s.box_targets) for s in samples],
        "keys": [s.key for s in samples],
        "datasets": [s.source for s in samples],
        "skipped": [],  # SkippedSample.as_dict() of the samples this batch could not use
        "read": len(samples),  # raw samples read for this batch, bad ones included
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
    world: int = 1
    skip_batches: int = 0
    resampled: bool = True
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER


def iterate_batches(spec: StreamSpec, worker: int = 0, num_workers: int = 1) -> Iterator[dict]:
    """This worker's share of batches j = worker, worker + num_workers, ... of the epoch."""
    names = [s.name for s in spec.sources]
    rows = {s.name: s.rows for s in spec.sources}
    tar_skips: list[SkippedSample] = []  # filled by the raw streams as they meet broken tars
    streams = [
        subsample(raw_samples(s.urls, _mix_seed(spec.seed, spec.epoch, spec.rank, worker, d), spec.resampled,
                              spec.shuffle_buffer, tar_skips.append), s.fraction, s.subsample_seed)
        for d, s in enumerate(spec.sources)
    ]
    counts_seq = batch_counts([s.ratio for s in spec.sources], spec.batch_size, spec.world, spec.rank)
    for j in range(spec.batches):
        counts = next(counts_seq)
        if j % num_workers != worker:
            continue
        tar_skips.clear()
        raws = [(d, next(streams[d])) for d, c in enumerate(counts) for _ in range(c)]
        if j < spec.skip_batches:
            continue  # resume: the raw samples are consumed, not decoded (their skips were counted before)
        samples, skipped = [], [t.as_dict() for t in tar_skips]
        for i, (d, raw) in enumerate(raws):
            rng = np.random.default_rng(_mix_seed(spec.seed, spec.epoch, spec.rank, j, i))
            try:
                s = decode_sample(raw, rng, spec.augment)
            except SampleError as e:
                key = raw.get("__key__", "?")
                skipped.append(SkippedSample(raw.get("__url__", "?"), key, str(e)).as_dict())
                samples.append(DecodedSample.blank(key, names[d], spec.augment.crop))
                continue
            s.source = names[d]
            override = spec.sources[d].supervision
            if override and s.supervision != override:
                if s.supervision is Supervision.box:  # a config error, not a bad sample: stop
                    raise SampleError(s.key, f"box samples cannot be trained as {override!r}")
                s.supervision = override
            if spec.sources[d].require_box_embeddings and s.supervision == "box" and s.box_targets is None:
                raise BadInput(f"{raw.get('__url__', '?')}: sample {s.key} has boxes but no CLIP image embeddings "
                               "(KEY.boxemb.npy), and the config asks for them (box_targets: image); convert "
                               f"{names[d]} with --box-embeddings open_clip:ViT-B-32:PRETRAINED")
            if s.dataset and s.dataset != names[d]:
                raise SampleError(s.key, f"record says dataset {s.dataset!r} but it came from {names[d]!r}'s shards")
            samples.append(drop_held_out(s, spec.sources[d].held_out))
        batch = collate(samples, names, rows)
        batch["skipped"], batch["read"] = skipped, len(raws) + len(tar_skips)
        yield batch


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
