"""One Sample -> the tar members of one WebDataset sample, plus its manifest row.

The image bytes go through untouched; the label array is checked against the taxonomy (shape,
dtype, value range) and encoded once as PNG. Anything wrong with the data is a BadSample, so it
lands in the quarantine report with the file and the reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.convert.readers.base import BadSample, Sample
from pipeline.shard_format import IMAGE_EXTS, ShardRecord, Supervision, box_embeddings_bytes, sample_members
from pipeline.taxonomy.schema import DatasetTaxonomy

# zlib level 1: label maps are large flat regions, so level 1 is nearly as small as 6 and several
# times faster, and conversion speed is what matters at corpus scale. (zlib's Z_RLE strategy makes
# label PNGs about a third smaller at the same encode speed, but they decode about 1.5x slower,
# which every training epoch would pay: not used.)
PNG_COMPRESS_LEVEL = 1


@dataclass
class Encoded:
    members: list[tuple[str, bytes]]  # (tar member name, bytes), in the order written
    row: dict  # manifest row (without the shard name)


def encode_label_png(label: np.ndarray, image=None) -> bytes:
    """uint8 -> 8-bit L PNG; uint16 -> 16-bit grey PNG (PIL mode I;16)."""
    from PIL import Image

    buf = io.BytesIO()
    (image if image is not None else Image.fromarray(label)).save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buf.getvalue()


def _check_label(tax: DatasetTaxonomy, sample: Sample, source: str) -> None:
    label = sample.label
    if label.ndim != 2 or label.shape != (sample.height, sample.width):
        raise BadSample(
            source, f"label is {label.shape[::-1]} (w, h) but the image is {sample.width}x{sample.height}"
        )
    if label.dtype != np.dtype(tax.label_dtype):
        raise BadSample(source, f"label dtype {label.dtype} but the taxonomy needs {tax.label_dtype}")


def _class_counts(tax: DatasetTaxonomy, sample: Sample, source: str, image) -> tuple[list[int], list[int]]:
    """Classes present and their pixel counts (ignore excluded); values outside the classes are bad."""
    label = sample.label
    counts = sample.label_counts
    if counts is not None and int(counts.sum()) != label.size:
        raise ValueError(
            f"{source}: the reader's label counts sum to {int(counts.sum())}, not {label.size} pixels"
        )
    if counts is None and label.dtype == np.uint8:
        # PIL's histogram of an L image is ~5x faster than np.bincount
        counts = np.asarray(image.histogram(), dtype=np.int64)
    elif counts is None:
        counts = np.bincount(label.ravel(), minlength=tax.num_classes)
    counts = np.pad(counts, (0, max(0, tax.num_classes - counts.size)))
    values = np.nonzero(counts)[0]
    bad = [int(v) for v in values if v >= tax.num_classes and v != tax.ignore_index]
    if bad:
        raise BadSample(
            source, f"label values {bad[:5]} outside 0..{tax.num_classes - 1} and ignore {tax.ignore_index}"
        )
    valid = counts[: tax.num_classes]
    present = np.nonzero(valid)[0]
    return [int(c) for c in present], [int(valid[c]) for c in present]


def _box_counts(tax: DatasetTaxonomy, sample: Sample, source: str) -> tuple[list[int], list[int]]:
    """For box data: classes present and, per class, the summed box area in pixels."""
    areas: dict[int, int] = {}
    for box in sample.boxes or []:
        if len(box) != 5:
            raise BadSample(source, f"box {box} is not [x0, y0, x1, y1, class]")
        x0, y0, x1, y1, cls = (int(v) for v in box)
        if not 0 <= cls < tax.num_classes:
            raise BadSample(source, f"box class {cls} outside 0..{tax.num_classes - 1}")
        if not (0 <= x0 < x1 <= sample.width and 0 <= y0 < y1 <= sample.height):
            raise BadSample(source, f"box {box} empty or outside the {sample.width}x{sample.height} image")
        areas[cls] = areas.get(cls, 0) + (x1 - x0) * (y1 - y0)
    present = sorted(areas)
    return present, [areas[c] for c in present]


def encode_sample(
    tax: DatasetTaxonomy,
    split: str,
    sample: Sample,
    embed_boxes: Callable[[Sample], np.ndarray] | None = None,
    box_encoder: str | None = None,
) -> Encoded:
    """Check and encode one sample. `embed_boxes` (box data only) runs after the boxes are checked.

    The key was checked when the split was planned (plan.list_items)."""
    source = sample.sources.get("annotation") or sample.sources.get("image") or sample.key
    if sample.image_ext not in IMAGE_EXTS:
        raise BadSample(
            sample.sources.get("image", source), f"image format {sample.image_ext!r} is not jpg or png"
        )
    label_png = None
    if tax.supervision is Supervision.box:
        present, pixels = _box_counts(tax, sample, source)
    else:
        if sample.label is None:
            raise BadSample(source, f"{tax.supervision.value} supervision needs a label map, the reader gave none")
        from PIL import Image

        _check_label(tax, sample, source)
        label_image = Image.fromarray(np.ascontiguousarray(sample.label))
        present, pixels = _class_counts(tax, sample, source, label_image)
        label_png = encode_label_png(sample.label, label_image)
    boxes = [[int(v) for v in b] for b in sample.boxes] if sample.boxes is not None else None
    box_embeddings = None
    if embed_boxes is not None and tax.supervision is Supervision.box:
        box_embeddings = box_embeddings_bytes(embed_boxes(sample))
    record = ShardRecord(
        dataset=tax.name, split=split, supervision=tax.supervision, width=sample.width, height=sample.height,
        num_classes=tax.num_classes, ignore_index=tax.ignore_index, classes_present=present, boxes=boxes,
        box_embedding_encoder=box_encoder if box_embeddings is not None else None, sources=sample.sources,
        pseudo_label=sample.pseudo_label,
    )
    members = sample_members(sample.key, sample.image_ext, sample.image_bytes, record, label_png, box_embeddings)
    row = {
        "key": sample.key,
        "width": int(sample.width),
        "height": int(sample.height),
        "image_ext": sample.image_ext,
        "classes_present": present,
        "class_pixels": pixels,
        "num_boxes": len(boxes) if boxes is not None else 0,
        "bytes": sum(len(b) for _, b in members),
    }
    return Encoded(members, row)
