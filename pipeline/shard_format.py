"""The shard format (shards/README.md), in one place: member names, the names of the files beside
the tars, the JSON record, the key rule, member checksums, the supervision kinds, and reading a raw
WebDataset sample back.

The converter writes through it, the trainer reads through it, and the test and benchmark shard
writers use it too, so a record can only have the fields the README lists.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import BadInput

if TYPE_CHECKING:  # numpy loads only where members are encoded or decoded: taxonomy code imports this
    import numpy as np

# Member names after the key: KEY.jpg / KEY.png, KEY.label.png, KEY.json, KEY.boxemb.npy.
IMAGE_EXTS = ("jpg", "png")
LABEL = "label.png"
RECORD = "json"
BOX_EMBEDDINGS = "boxemb.npy"

# Files beside the tars: per split `<split>-NNNNNN.tar` shards, a manifest and a quarantine report; one
# index per shard folder (over every dataset in it).
INDEX_FILE = "index.parquet"
MANIFEST_SUFFIX = ".manifest.parquet"
QUARANTINE_SUFFIX = ".quarantine.jsonl"


def manifest_name(split: str) -> str:
    return f"{split}{MANIFEST_SUFFIX}"


def quarantine_name(split: str) -> str:
    return f"{split}{QUARANTINE_SUFFIX}"


def shard_pattern(split: str) -> str:
    """Glob of a split's tars inside its dataset folder."""
    return f"{split}-*.tar"


def split_of_shard(file_name: str) -> str:
    """'training-000003.tar' -> 'training' (split names may hold '-'; the shard number never does)."""
    return file_name.rsplit("-", 1)[0]


KEY_RULE = "letters, digits, '-' and '_'"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_NOT_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def label_dtype(num_classes: int) -> str:
    """The dtype of a label PNG over `num_classes` classes: uint8 up to 254 classes (indices 0..253,
    255 is ignore), uint16 above (ignore 65535). 255 classes would still fit in uint8, but every shard
    written so far follows 254, so that stays the one rule, for shards and for predicted label maps."""
    return "uint8" if num_classes <= 254 else "uint16"


def ignore_value(num_classes: int) -> int:
    """The value that means 'no class' in a label PNG over `num_classes` classes."""
    return 255 if label_dtype(num_classes) == "uint8" else 65535


class Supervision(str, Enum):
    """What a dataset's annotation gives; the order is the code the trainer's losses switch on."""

    dense = "dense"  # exact per-pixel labels: L_HD
    coarse = "coarse"  # noisy masks: L_LD keeps each image's lowest-loss pixels
    box = "box"  # boxes only: L_WD distillation

    @property
    def code(self) -> int:
        return list(Supervision).index(self)


def check_key(key: str) -> str:
    """The key unchanged, or ValueError: a key is a tar member stem, so only KEY_RULE characters."""
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"key {key!r} may hold only {KEY_RULE}")
    return key


def split_member_name(name: str) -> tuple[str, str]:
    """The key rule for reading: 'dir/abc-000001.label.png' -> ('dir/abc-000001', 'label.png'). The
    extension starts at the first dot of the file name, since keys never hold dots."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def sanitize_key(text: str) -> str:
    """A key made from any text (a file stem, an id): other characters become '_'."""
    key = _NOT_KEY_CHARS.sub("_", text)
    if not key:
        raise ValueError(f"cannot make a key from {text!r}")
    return key


class PseudoLabelSource(BaseModel):
    """Who made a pseudo-labelled sample's label PNG (`ssiw pseudo-label`), and in which label space."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str  # the checkpoint that predicted it
    step: int
    labels: list[str]  # name of each class index
    label_space: str  # "taxonomy:NAME", "labels" (--label sentences) or "run" (the run's own)
    encoder: str | None  # text encoder of the label embeddings
    confidence: float  # pixels whose top probability was not above it are ignore
    from_dataset: str  # the dataset whose images were labelled


class ShardRecord(BaseModel):
    """KEY.json: every field shards/README.md lists, nothing else."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    split: str
    supervision: Supervision
    width: int
    height: int
    num_classes: int
    ignore_index: int
    classes_present: list[int]  # ignore excluded; for box data, the box classes
    boxes: list[list[int]] | None  # [x0, y0, x1, y1, class_index], box supervision only
    box_embedding_encoder: str | None  # the open_clip spec when KEY.boxemb.npy is present
    sources: dict[str, str]  # role ("image", "annotation") -> file name, relative to the dataset root
    pseudo_label: PseudoLabelSource | None = None  # only in `ssiw pseudo-label` output
    # Member suffix -> CRC32 of its bytes (8 hex digits), set by sample_members; None in older shards.
    crc32: dict[str, str] | None = None

    def to_json(self) -> bytes:
        # Sorted keys and json's default separators. The optional fields appear only when set, so a
        # record without them has the bytes shards were written with before those fields existed.
        data = self.model_dump(mode="json")
        for optional in ("pseudo_label", "crc32"):
            if data[optional] is None:
                del data[optional]
        return json.dumps(data, sort_keys=True).encode()


def crc32_hex(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def checksum_problem(raw: dict) -> str | None:
    """Why a raw sample's members do not match the CRC32s its record lists, or None when they do (or
    the record lists none: shards written before the field, or a record parse_sample will reject).

    A flipped byte in a JPEG's scan data still decodes, into wrong pixels; only a checksum notices."""
    record = raw.get(RECORD)
    if record is None:
        return None
    try:
        sums = json.loads(record).get("crc32")
    except (ValueError, AttributeError):
        return None
    if not isinstance(sums, dict):
        return None
    for suffix, expected in sorted(sums.items()):
        data = raw.get(suffix)
        if data is None:
            return f"member .{suffix} is listed in the record's crc32 but missing"
        actual = crc32_hex(data)
        if actual != expected:
            return f"member .{suffix} is damaged: CRC32 {actual}, the record says {expected}"
    return None


def box_embeddings_bytes(vectors: np.ndarray) -> bytes:
    """KEY.boxemb.npy: float16 [num_boxes, D]."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float16), allow_pickle=False)
    return buf.getvalue()


def sample_members(
    key: str, image_ext: str, image: bytes, record: ShardRecord, label_png: bytes | None = None,
    box_embeddings: bytes | None = None,
) -> list[tuple[str, bytes]]:
    """The tar members of one sample, in the README's order; the record lists each other member's CRC32."""
    members = [(f"{check_key(key)}.{image_ext}", image)]
    if label_png is not None:
        members.append((f"{key}.{LABEL}", label_png))
    if box_embeddings is not None:
        members.append((f"{key}.{BOX_EMBEDDINGS}", box_embeddings))
    sums = {split_member_name(name)[1]: crc32_hex(data) for name, data in members}
    record_member = (f"{key}.{RECORD}", record.model_copy(update={"crc32": sums}).to_json())
    members.insert(len(members) - (box_embeddings is not None), record_member)  # before .boxemb.npy
    return members


class SampleError(BadInput):
    """A shard sample that cannot be used; names the sample key and the reason."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"sample {key}: {reason}")


@dataclass(frozen=True)
class ShardSample:
    """One sample as read from a shard, members still encoded (decoding is the reader's job)."""

    key: str
    record: ShardRecord
    image: bytes
    image_ext: str
    label_png: bytes | None
    box_embeddings: np.ndarray | None  # float32 [num_boxes, D]


def parse_sample(raw: dict) -> ShardSample:
    """A raw webdataset sample (member suffix -> bytes, plus "__key__") -> ShardSample, or SampleError."""
    key = raw.get("__key__", "?")
    if RECORD not in raw:
        raise SampleError(key, "no .json record")
    try:
        record = ShardRecord.model_validate_json(raw[RECORD])
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "json_invalid":
            raise SampleError(key, f".json record is not valid JSON: {first['msg']}") from None
        where = ".".join(str(p) for p in first["loc"])
        raise SampleError(key, f".json record: {where}: {first['msg']}") from None
    # webdataset also spells JPEG "jpeg"; shards written here never do.
    ext = next((e for e in (*IMAGE_EXTS, "jpeg") if e in raw), None)
    if ext is None:
        members = sorted(k for k in raw if not k.startswith("__"))
        raise SampleError(key, f"no image member (.jpg or .png); members: {members}")
    if LABEL not in raw and record.supervision is not Supervision.box:
        raise SampleError(key, f"{record.supervision.value} supervision but no .{LABEL}")
    vectors = None
    if BOX_EMBEDDINGS in raw:
        import numpy as np

        try:
            vectors = np.load(io.BytesIO(raw[BOX_EMBEDDINGS])).astype(np.float32)
        except (ValueError, OSError, EOFError) as e:  # truncated or not an .npy at all
            raise SampleError(key, f"{BOX_EMBEDDINGS} cannot be read: {e}") from None
        n = len(record.boxes or [])
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise SampleError(key, f"{BOX_EMBEDDINGS} has shape {vectors.shape}, expected [{n}, D]")
    return ShardSample(key, record, raw[ext], ext, raw.get(LABEL), vectors)
