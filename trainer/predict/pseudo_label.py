"""`ssiw pseudo-label`: a run labels a dataset's images, and the labels become shards (or label PNGs).

The paper (section 4.3, appendix C) makes pseudo-labels for downstream tasks, not for training its
segmentation model: semantic masks on nine RGB-D datasets, turned into 512-d label embeddings that a
monocular depth network (LeReS) takes as an extra input (Table 6), and pseudo instance masks on
Objects365 to pre-train an instance segmenter, CondInst (Table 7). Training ssiw's own model on these
shards (supervision `coarse`, so L_LD) is something this tool allows, not something the paper reports.
Here a reader (the same interface as a format reader) lists the images of a dataset split, from its
shards or from its root through the dataset's own format reader, and `read()` predicts each label
map. `ssiw convert`'s shard writer and runner then do the rest: the same tar layout, manifests,
quarantine, temp-then-rename writes and resume after a kill. Each record says which run made the
label and in which label space (`pseudo_label`); supervision is `coarse`, so a run trained on them uses
L_LD; pixels whose top probability is not above the confidence threshold are ignore.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import storage
from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.shard import ShardOptions
from pipeline.errors import BadInput
from pipeline.shard_format import IMAGE_EXTS, RECORD, PseudoLabelSource, Supervision, sanitize_key
from pipeline.taxonomy.schema import ClassEntry, DatasetTaxonomy, SplitSpec

_PREDICTORS: dict = {}  # run path -> Predictor, one model per process (a Ray worker keeps its own)


@dataclass(frozen=True)
class OutputLabels:
    """The classes pseudo-labels are written in (a taxonomy's, --label sentences or the run's own)."""

    names: tuple[str, ...]
    vectors: np.ndarray  # (K, D)
    kind: str  # "taxonomy:NAME" | "labels" | "run"
    registry_labels: tuple[str, ...] | None = None  # a taxonomy's registry keys, kept in the output taxonomy


@dataclass(frozen=True)
class Labeller:
    """Everything read() needs; small and picklable (the network loads lazily per process)."""

    run: str
    step: int
    output: OutputLabels
    encoder: str | None
    scale: int
    confidence: float
    from_dataset: str

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([self.run, self.step, self.output.names, self.output.kind, self.scale,
                                       self.confidence]).encode())
        h.update(np.ascontiguousarray(self.output.vectors, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def source(self) -> PseudoLabelSource:
        return PseudoLabelSource(run=self.run, step=self.step, labels=list(self.output.names),
                                 label_space=self.output.kind, encoder=self.encoder, confidence=self.confidence,
                                 from_dataset=self.from_dataset)

    def predict(self, image: np.ndarray, ignore: int, dtype) -> np.ndarray:
        from trainer.predict.predictor import Predictor
        from trainer.predict.run_space import label_image

        predictor = _PREDICTORS.get(self.run)
        if predictor is None:
            predictor = _PREDICTORS[self.run] = Predictor.from_checkpoint(self.run)
        labels = label_image(predictor, image, self.output.vectors, self.scale, None, self.confidence)
        return np.where(labels < len(self.output.names), labels, ignore).astype(dtype)


@dataclass(frozen=True)
class PseudoOptions(ShardOptions):
    labelling: str = ""

    def tag(self) -> str:
        return f"{super().tag()}|pseudo-label={self.labelling}"  # new run, labels or threshold: redo shards


def output_taxonomy(name: str, output: OutputLabels, split: str, images: str) -> DatasetTaxonomy:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise BadInput(f"--name {name!r}: a dataset name holds lower-case letters, digits, '.', '_' and '-'")
    keys = output.registry_labels or tuple(sanitize_key(n).lower() for n in output.names)
    classes = [ClassEntry(name=n, label=k, raw_id=i) for i, (n, k) in enumerate(zip(output.names, keys))]
    return DatasetTaxonomy(name=name, version="pseudo-label", homepage="", format="pseudo-label",
                           supervision=Supervision.coarse, splits={split: SplitSpec(images=images)}, classes=classes)


# --- where the images come from ----------------------------------------------------------------

def plan_from_shards(folder: storage.Location, split: str):
    """One item per sample of the split's tars in `folder` (local or s3://), read through
    pipeline.shards.read: the tar, the image member's offset and size. A sample the reader has to
    skip (damaged member, broken or cut-short tar) becomes an item that read() quarantines with the
    reader's reason."""
    from pipeline.shards.read import split_shards, tar_samples

    for url in split_shards(folder, split):
        skipped = []
        for raw in tar_samples(url, skipped.append, locate=True):
            yield _shard_item(url, raw)
        for x in skipped:
            key = sanitize_key(x.key.rsplit("/", 1)[-1])
            yield WorkItem(key, url, sources={"image": f"{storage.name(url)}:{key}"}, error=f"sample {key}: {x.reason}")


def _shard_item(url: str, raw: dict) -> WorkItem:
    key = raw["__key__"]
    try:
        record = json.loads(raw.get(RECORD, b"{}"))
    except ValueError:
        record = {}
    image = record.get("sources", {}).get("image") or f"{storage.name(url)}:{key}"
    ext = next((e for e in IMAGE_EXTS if e in raw), None)
    if ext is None:
        return WorkItem(key, url, sources={"image": image}, error=f"sample {key}: no image member in the shard")
    offset, size = raw["__members__"][ext]
    return WorkItem(key, url, extra={"offset": offset, "size": size, "ext": ext}, sources={"image": image})


def _image_bytes(item: WorkItem) -> tuple[bytes, str]:
    if item.error:
        raise BadSample(item.image, item.error)
    if "offset" in item.extra:  # a member of a source shard, local or in object storage
        with storage.open_read(item.image) as f:
            f.seek(item.extra["offset"])
            data = f.read(item.extra["size"])
        if len(data) != item.extra["size"]:
            raise BadSample(item.image, f"sample {item.key}: image member cut short (truncated tar?)")
        return data, item.extra["ext"]
    from pipeline.convert.readers.common import load_image

    data, ext, _, _ = load_image(item.image)
    return data, ext


@dataclass(frozen=True)
class PseudoLabelReader:
    """A format reader whose labels come from a network: plan() lists images, read() predicts."""

    labeller: Labeller
    source_tax: DatasetTaxonomy | None = None  # images under a dataset root, planned by its own reader
    options: frozenset = frozenset()
    shards: str | None = None  # or: the source dataset's shard folder, local or s3:// (root is then unused)

    def plan(self, tax: DatasetTaxonomy, root: Path, split: str):
        if self.source_tax is None:
            yield from plan_from_shards(self.shards or root, split)
            return
        from pipeline.convert.readers import get_reader

        for item in get_reader(self.source_tax.format).plan(self.source_tax, Path(root), split):
            rel = str(Path(item.image).relative_to(root)) if Path(item.image).is_relative_to(root) else item.image
            yield WorkItem(item.key, item.image, sources={"image": item.sources.get("image", rel)})

    def read(self, tax: DatasetTaxonomy, item: WorkItem) -> Sample:
        from PIL import Image

        data, ext = _image_bytes(item)
        try:
            image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception as e:  # noqa: BLE001 -- PIL raises many types for corrupt data
            raise BadSample(item.image, f"sample {item.key}: cannot decode the image: {e}") from None
        label = self.labeller.predict(image, tax.ignore_index, tax.label_dtype)
        sources = {"image": item.sources.get("image") or Path(item.image).name}
        return Sample(item.key, data, ext, image.shape[1], image.shape[0], label, sources=sources,
                      pseudo_label=self.labeller.source())


def write_shards(reader: PseudoLabelReader, tax: DatasetTaxonomy, root: storage.Location, split: str, out: Path,
                 shard_bytes: int, use_ray: bool = False, progress: bool = True):
    import tempfile

    from pipeline.convert.runner import convert_split

    options = PseudoOptions(labelling=reader.labeller.fingerprint())
    if not storage.is_remote(root):
        return convert_split(tax, reader, Path(root), split, out, shard_bytes=shard_bytes, options=options,
                             use_ray=use_ray, progress=progress)
    # The runner checks for a local dataset root; shards in object storage have none and the reader
    # plans from reader.shards, so an empty folder stands in for it.
    with tempfile.TemporaryDirectory(prefix="ssiw-pseudo-") as stand_in:
        return convert_split(tax, reader, Path(stand_in), split, out, shard_bytes=shard_bytes, options=options,
                             use_ray=use_ray, progress=progress)


def write_pngs(reader: PseudoLabelReader, tax: DatasetTaxonomy, root: storage.Location, split: str, out: Path,
               progress: bool = True) -> dict:
    """`<out>/<key>.png` label maps, `classes.txt` (one name per index) and `errors.jsonl`.

    Each PNG is written to a temporary name and renamed, so a PNG under its final name is complete;
    a re-run with the same labelling skips those (a different labelling starts over in a new folder)."""
    from tqdm import tqdm

    from pipeline.convert.encode import encode_label_png
    from pipeline.safe_write import remove_stale_temps
    from pipeline.safe_write import write_bytes_atomic as write_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "labelling.json"
    mine = {"labelling": reader.labeller.fingerprint(), "run": reader.labeller.run,
            "label_space": reader.labeller.output.kind, "confidence": reader.labeller.confidence,
            "ignore": tax.ignore_index}
    if stamp.exists() and json.loads(stamp.read_text()).get("labelling") != mine["labelling"]:
        raise BadInput(f"{out}: holds label PNGs of another run, label space or threshold ({stamp}); "
                         f"choose a new --png-dir")
    remove_stale_temps(out)  # left by a killed run
    write_atomic(stamp, json.dumps(mine, indent=2).encode())
    write_atomic(out / "classes.txt", ("\n".join(tax.class_names) + "\n").encode())
    items = sorted(reader.plan(tax, root, split), key=lambda it: it.key)
    done = skipped = 0
    errors = []
    for item in tqdm(items, desc=f"{tax.name}/{split}", unit="img", disable=not progress):
        final = out / f"{item.key}.png"
        if final.exists():
            skipped += 1
            continue
        try:
            sample = reader.read(tax, item)
        except BadSample as e:
            errors.append({"key": item.key, "file": str(e.path), "reason": e.reason})
            continue
        write_atomic(final, encode_label_png(sample.label))
        done += 1
    write_atomic(out / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in errors).encode())
    return {"written": done, "kept": skipped, "errors": len(errors), "folder": str(out)}
