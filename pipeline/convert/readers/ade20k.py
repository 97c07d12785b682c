"""ADE20K, two on-disk variants (format_options `variant`):

challenge (default): ADEChallengeData2016 annotation PNGs, mode L, value = 1..150 in objectInfo150
    order, 0 = other (the taxonomy lists 0 in ignore_values).
full: the full ADE20K release's `<name>_seg.png` (RGB): class = (R // 10) * 256 + G, instance in B.
    Full-ADE class ids become challenge ids through mapFromADE.txt (format_options `map_from_ade`, a
    path relative to the dataset root, default "mapFromADE.txt": lines "challenge_id<TAB>full_id");
    a full id the file does not map becomes 0 (other), as in the official conversion. Pair with
    annotation_suffix `_seg`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.common import (
    check_size,
    load_image,
    make_sample,
    map_raw,
    open_index,
    open_label,
)
from pipeline.convert.readers.dense import read_index_png
from pipeline.convert.readers.pairing import pair_split
from pipeline.errors import BadInput
from pipeline.names import relative_path
from pipeline.taxonomy.schema import DatasetTaxonomy

FULL_ID_COUNT = (255 // 10 + 1) * 256  # every value (R // 10) * 256 + G can take


def _variant(tax: DatasetTaxonomy) -> str:
    variant = str(tax.format_options.get("variant", "challenge"))
    if variant not in ("challenge", "full"):
        raise BadInput(f"{tax.name}: ade20k variant must be 'challenge' or 'full', not {variant!r}")
    return variant


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    root = Path(root)
    items = pair_split(tax, root, split)
    if _variant(tax) == "full":
        option = str(tax.format_options.get("map_from_ade", "mapFromADE.txt"))
        table = str(root / relative_path(option, f"{tax.name}: format_options.map_from_ade"))
        items = [replace(i, extra={**i.extra, "map_from_ade": table}) for i in items]
    return iter(items)


@lru_cache(maxsize=4)
def load_map_from_ade(path: str) -> np.ndarray:
    """uint8 table: full-ADE class id -> challenge id, 0 where unmapped."""
    table = np.zeros(FULL_ID_COUNT, dtype=np.uint8)
    try:
        with open_index(path) as f:
            lines = f.read().decode().splitlines()
    except FileNotFoundError:
        raise BadSample(path, "missing file (mapFromADE table)") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            challenge, full = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            raise BadSample(path, f"line {number}: expected 'challenge_id full_id', got {line!r}") from None
        if not (0 < challenge < 256 and 0 <= full < FULL_ID_COUNT):
            raise BadSample(path, f"line {number}: ids out of range: {line.strip()!r}")
        table[full] = challenge
    return table


def full_class_ids(rgb: np.ndarray) -> np.ndarray:
    """Full-ADE class id per pixel from a _seg.png array (H x W x 3)."""
    return (rgb[..., 0] // 10).astype(np.int32) * 256 + rgb[..., 1]


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    if _variant(tax) == "challenge":
        return read_index_png(tax, item, ("L",))
    image = load_image(item.image)
    assert item.annotation is not None
    seg = open_label(item.annotation, ("RGB",))
    check_size(item.annotation, seg.size, image.width, image.height)
    challenge = load_map_from_ade(item.extra["map_from_ade"])[full_class_ids(np.asarray(seg))]
    return make_sample(item, image, map_raw(tax, challenge, item.annotation))

