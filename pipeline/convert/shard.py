"""Convert one planned shard: the body of one Ray task (or one in-process call with --no-ray).

The tar is written under `<final>.tmp-<random>` and renamed when complete; then the shard's part
(manifest rows + quarantine entries + fingerprint) is written the same way. A shard counts as done
only when its part exists, matches the plan's fingerprint and its tar has the recorded size, so a
kill at any moment leaves either a finished shard or one that the next run redoes. The output may be
an object-store URL (s3://...): pipeline.safe_write publishes there with the same guarantee.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pipeline import storage
from pipeline.convert.encode import encode_sample
from pipeline.convert.fingerprint import convert_inputs
from pipeline.convert.plan import ShardPlan
from pipeline.convert.readers.base import BadSample, Reader
from pipeline.convert.subset import Subset
from pipeline.convert.tario import DeterministicTarWriter
from pipeline.errors import SsiwError
from pipeline.names import path_name
from pipeline.safe_write import publish, temp_path, write_bytes_atomic
from pipeline.taxonomy.schema import DatasetTaxonomy

PARTS_DIR = ".parts"


@dataclass(frozen=True)
class ShardOptions:
    strict: bool = False
    box_embeddings: str | None = None  # "open_clip:MODEL:PRETRAINED"
    subset: Subset | None = None  # planned only a seeded share of the split; recorded in each part

    def tag(self) -> str:
        """What, besides the input, changes a shard's bytes: part of every shard's fingerprint."""
        return f"box_embeddings={self.box_embeddings}"

    def inputs(self, tax: DatasetTaxonomy, reader: Reader) -> dict[str, str]:
        """The job's non-file inputs (fingerprint.py), as the planner hashes them and each part records them."""
        return convert_inputs(tax, reader, self.tag(), self.subset.tag() if self.subset else None)


class StrictStop(SsiwError):
    """--strict: the first bad sample stops the job. Picklable, so it crosses from a Ray worker."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"--strict: bad sample {path}: {reason}")
        self.path, self.reason = path, reason

    def __reduce__(self):
        return (StrictStop, (self.path, self.reason))


class ShardFailed(RuntimeError):
    """Anything other than a bad sample or a user error (a bug, a full disk): fail loudly, naming the
    shard. Not an SsiwError: the CLI shows its traceback."""


def tar_path(out_ds: storage.Location, name: str) -> storage.Location:
    return storage.join(out_ds, f"{name}.tar")


def part_path(out_ds: storage.Location, name: str) -> storage.Location:
    return storage.join(out_ds, PARTS_DIR, f"{name}.json")


def read_part(out_ds: storage.Location, name: str) -> dict | None:
    try:
        return json.loads(storage.read_text(part_path(out_ds, name)))
    except (OSError, ValueError):
        return None


def is_complete(out_ds: storage.Location, plan: ShardPlan) -> bool:
    part = read_part(out_ds, plan.name)
    if part is None or part.get("fingerprint") != plan.fingerprint:
        return False
    if not part["samples"]:
        return True  # every sample was quarantined: no tar
    try:
        return storage.size(tar_path(out_ds, plan.name)) == part["tar_bytes"]
    except OSError:
        return False


def convert_shard(
    tax: DatasetTaxonomy, reader: Reader, plan: ShardPlan, out_dir: storage.Location, options: ShardOptions
) -> dict:
    """Read, encode and write one shard; returns a short summary (the part itself is written too)."""
    out_ds = storage.join(out_dir, path_name(tax.name, "dataset name"))
    storage.makedirs(out_ds)
    final = tar_path(out_ds, plan.name)
    shard_name = storage.name(final)
    tmp = temp_path(final)  # beside the final; in the local temp folder for an object store
    tar_bytes = 0
    embed = None
    if options.box_embeddings and tax.supervision.value == "box":
        from pipeline.convert.boxemb import box_embedder

        embed = box_embedder(options.box_embeddings)
    rows: list[dict] = []
    quarantine: list[dict] = []
    notes: dict[str, int] = {}  # what reading changed, by reason (readers' Sample.notes), summed
    writer: DeterministicTarWriter | None = None
    item = None
    try:
        for item in plan.items:
            try:
                sample = reader.read(tax, item)
                encoded = encode_sample(tax, plan.split, sample, embed, options.box_embeddings)
            except BadSample as e:
                if options.strict:
                    raise StrictStop(e.path, e.reason) from None
                entry = {"key": item.key, "file": e.path, "reason": e.reason}
                if getattr(e, "unknown", None):  # raw values the taxonomy lacks, for the summary table
                    entry["unknown"] = e.unknown
                    if getattr(e, "unknown_pixels", None) is not None:  # and their pixels, for shares
                        entry["unknown_pixels"], entry["pixels"] = e.unknown_pixels, e.pixels
                quarantine.append(entry)
                continue
            if writer is None:
                writer = DeterministicTarWriter(tmp)
            for name, data in encoded.members:
                writer.add(name, data)
            for reason, count in sample.notes.items():
                notes[reason] = notes.get(reason, 0) + count
            rows.append({**encoded.row, "shard": shard_name})
        if writer is not None:
            writer.close()
            tar_bytes = tmp.stat().st_size
            publish(tmp, final)
        else:
            storage.remove(final)  # left by an earlier plan of this shard
    except SsiwError:  # --strict, or a problem with the taxonomy's options: the user's to fix
        raise
    except Exception as e:  # anything else gets the shard and sample named, its traceback kept
        where = f" at {item.key} ({item.image})" if item is not None else ""
        raise ShardFailed(f"shard {tax.name}/{shard_name} failed{where}: {type(e).__name__}: {e}") from e
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    part = {
        "shard": shard_name,
        "fingerprint": plan.fingerprint,
        "inputs": options.inputs(tax, reader),  # lets a re-run say why it redoes this shard
        "tar_bytes": tar_bytes,
        "samples": rows,
        "quarantine": quarantine,
        "notes": notes,
    }
    write_bytes_atomic(part_path(out_ds, plan.name), json.dumps(part, sort_keys=True).encode())
    return {"shard": shard_name, "items": plan.count, "written": len(rows), "quarantined": len(quarantine)}


def shard_file_pattern(split: str) -> re.Pattern:
    """The names of a split's shard tars and parts, `<split>-NNNNNN.tar` / `.json`."""
    return re.compile(rf"{re.escape(split)}-(\d{{6}})\.(tar|json)")


def split_files(out_ds: storage.Location, split: str) -> list[tuple[int, storage.Location]]:
    """This split's finished shard tars and parts, with their shard index."""
    pattern = shard_file_pattern(split)
    found = []
    for folder in (out_ds, storage.join(out_ds, PARTS_DIR)):
        for file_name in storage.list_files(folder):
            m = pattern.fullmatch(file_name)
            if m:
                found.append((int(m.group(1)), storage.join(folder, file_name)))
    return sorted(found, key=lambda f: (f[0], str(f[1])))
