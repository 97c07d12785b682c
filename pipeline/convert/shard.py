"""Convert one planned shard: the body of one Ray task (or one in-process call with --no-ray).

The tar is written under `<final>.tmp-<random>` and renamed when complete; then the shard's part
(manifest rows + quarantine entries + fingerprint) is written the same way. A shard counts as done
only when its part exists, matches the plan's fingerprint and its tar has the recorded size, so a
kill at any moment leaves either a finished shard or one that the next run redoes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.convert.encode import encode_sample
from pipeline.convert.plan import ShardPlan
from pipeline.convert.readers.base import BadSample, Reader
from pipeline.convert.tario import DeterministicTarWriter
from pipeline.errors import SsiwError
from pipeline.safe_write import publish, temp_path, write_bytes_atomic
from pipeline.taxonomy.schema import DatasetTaxonomy

PARTS_DIR = ".parts"


@dataclass(frozen=True)
class ShardOptions:
    strict: bool = False
    box_embeddings: str | None = None  # "open_clip:MODEL:PRETRAINED"

    def tag(self) -> str:
        """What, besides the input, changes a shard's bytes: part of every shard's fingerprint."""
        return f"box_embeddings={self.box_embeddings}"


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


def tar_path(out_ds: Path, name: str) -> Path:
    return out_ds / f"{name}.tar"


def part_path(out_ds: Path, name: str) -> Path:
    return out_ds / PARTS_DIR / f"{name}.json"


def read_part(out_ds: Path, name: str) -> dict | None:
    try:
        return json.loads(part_path(out_ds, name).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out_ds: Path, plan: ShardPlan) -> bool:
    part = read_part(out_ds, plan.name)
    if part is None or part.get("fingerprint") != plan.fingerprint:
        return False
    if not part["samples"]:
        return True  # every sample was quarantined: no tar
    try:
        return tar_path(out_ds, plan.name).stat().st_size == part["tar_bytes"]
    except OSError:
        return False


def convert_shard(
    tax: DatasetTaxonomy, reader: Reader, plan: ShardPlan, out_dir: Path, options: ShardOptions
) -> dict:
    """Read, encode and write one shard; returns a short summary (the part itself is on disk)."""
    out_ds = Path(out_dir) / tax.name
    out_ds.mkdir(parents=True, exist_ok=True)
    final = tar_path(out_ds, plan.name)
    tmp = temp_path(final)
    embed = None
    if options.box_embeddings and tax.supervision.value == "box":
        from pipeline.convert.boxemb import box_embedder

        embed = box_embedder(options.box_embeddings)
    rows: list[dict] = []
    quarantine: list[dict] = []
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
                quarantine.append(entry)
                continue
            if writer is None:
                writer = DeterministicTarWriter(tmp)
            for name, data in encoded.members:
                writer.add(name, data)
            rows.append({**encoded.row, "shard": final.name})
        if writer is not None:
            writer.close()
            publish(tmp, final)
        else:
            final.unlink(missing_ok=True)  # left by an earlier plan of this shard
    except SsiwError:  # --strict, or a problem with the taxonomy's options: the user's to fix
        raise
    except Exception as e:  # anything else gets the shard and sample named, its traceback kept
        where = f" at {item.key} ({item.image})" if item is not None else ""
        raise ShardFailed(f"shard {tax.name}/{final.name} failed{where}: {type(e).__name__}: {e}") from e
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    part = {
        "shard": final.name,
        "fingerprint": plan.fingerprint,
        "tar_bytes": final.stat().st_size if rows else 0,
        "samples": rows,
        "quarantine": quarantine,
    }
    write_bytes_atomic(part_path(out_ds, plan.name), json.dumps(part, sort_keys=True).encode())
    return {"shard": final.name, "items": plan.count, "written": len(rows), "quarantined": len(quarantine)}


def shard_file_pattern(split: str) -> re.Pattern:
    """The names of a split's shard tars and parts, `<split>-NNNNNN.tar` / `.json`."""
    return re.compile(rf"{re.escape(split)}-(\d{{6}})\.(tar|json)")


def split_files(out_ds: Path, split: str) -> list[tuple[int, Path]]:
    """This split's finished shard tars and parts, with their shard index."""
    pattern = shard_file_pattern(split)
    found = []
    for folder in (out_ds, out_ds / PARTS_DIR):
        if folder.is_dir():
            for p in folder.iterdir():
                m = pattern.fullmatch(p.name)
                if m:
                    found.append((int(m.group(1)), p))
    return sorted(found)
