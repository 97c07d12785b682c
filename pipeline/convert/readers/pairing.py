"""Find a split's files and pair each annotation with its image.

A split's `images` / `annotations` entry (relative to the dataset root) is either a glob
("leftImg8bit/train/*/*.png") or a folder (searched recursively). Pairing options, from the
taxonomy's format_options:
  annotation_suffix / image_suffix: an annotation's stem minus annotation_suffix, plus image_suffix,
      is its image's stem (Cityscapes: x_gtFine_labelIds.png <-> x_leftImg8bit.png).
  pair_by: stem (default) | number: pair by the integer in the stem (SUN RGB-D img-000001.jpg <->
      00000001.png).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pipeline.convert.readers.base import BadSample, WorkItem
from pipeline.convert.readers.common import relative, sanitize_key
from pipeline.taxonomy.schema import DatasetTaxonomy, SplitSpec

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"\d+")


def split_spec(tax: DatasetTaxonomy, split: str) -> SplitSpec:
    if split not in tax.splits:
        raise KeyError(f"{tax.name}: no split {split!r} (known: {', '.join(sorted(tax.splits))})")
    return tax.splits[split]


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def list_files(root: Path, pattern: str, exts: Iterable[str]) -> list[Path]:
    """Files a split entry names, sorted. A folder is searched recursively for the given extensions."""
    exts = tuple(e.lower() for e in exts)
    if is_glob(pattern):
        found = [p for p in root.glob(pattern) if p.is_file()]
    else:
        folder = root / pattern
        if not folder.is_dir():
            raise BadSample(folder, "missing folder")
        found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts]
    return sorted(found)


def strip_suffix(stem: str, suffix: str) -> str:
    return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem


def match_key(stem: str, suffix: str, pair_by: str) -> str | int | None:
    """What an image and its annotation have in common: the stem minus its suffix, or its number."""
    base = strip_suffix(stem, suffix)
    if pair_by == "number":
        runs = _DIGITS.findall(base)
        return int(runs[-1]) if runs else None
    if pair_by != "stem":
        raise ValueError(f"pair_by must be 'stem' or 'number', not {pair_by!r}")
    return base


def guess_image_path(root: Path, pattern: str, stem: str) -> Path:
    """Where an image with this stem would be (for reporting it missing, or when only an id is known)."""
    if is_glob(pattern):
        parent, name = pattern.rsplit("/", 1) if "/" in pattern else ("", pattern)
        ext = Path(name).suffix if not is_glob(Path(name).suffix) else ".jpg"
        if not is_glob(parent):
            return root / parent / f"{stem}{ext}"
        return root / f"{stem}{ext}"
    return root / pattern / f"{stem}.jpg"


def pair_split(
    tax: DatasetTaxonomy,
    root: Path,
    split: str,
    annotations: list[Path] | None = None,
    ann_suffix: str | None = None,
) -> list[WorkItem]:
    """One WorkItem per annotation file (the split's PNGs, or the given files), with its image; sorted
    by key. Images without an annotation are not labelled data and are left out; an annotation
    without an image still gets an item whose image path does not exist, so read() quarantines it
    as a missing file."""
    root = Path(root)
    spec = split_spec(tax, split)
    if spec.annotations is None and annotations is None:
        raise ValueError(f"{tax.name}: split {split!r} names no annotations")
    opts = tax.format_options
    img_suffix = str(opts.get("image_suffix", "") or "")
    if ann_suffix is None:
        ann_suffix = str(opts.get("annotation_suffix", "") or "")
    pair_by = str(opts.get("pair_by", "stem"))

    images: dict[object, Path] = {}
    for path in list_files(root, spec.images, IMAGE_EXTS):
        m = match_key(path.stem, img_suffix, pair_by)
        if m is None:
            continue
        if m in images:
            raise ValueError(
                f"{tax.name}/{split}: images {images[m]} and {path} pair with the same annotation"
            )
        images[m] = path

    items: dict[str, WorkItem] = {}
    if annotations is None:
        assert spec.annotations is not None
        annotations = list_files(root, spec.annotations, (".png",))
    for ann in annotations:
        m = match_key(ann.stem, ann_suffix, pair_by)
        image = images.get(m) if m is not None else None
        if image is None:
            base = strip_suffix(ann.stem, ann_suffix)
            image = guess_image_path(root, spec.images, base + img_suffix)
        key = sanitize_key(strip_suffix(image.stem, img_suffix))
        if key in items:
            raise ValueError(f"{tax.name}/{split}: key {key!r} from both {items[key].annotation} and {ann}")
        items[key] = WorkItem(
            key=key,
            image=str(image),
            annotation=str(ann),
            extra={"sources": {"image": relative(image, root), "annotation": relative(ann, root)}},
        )
    return [items[k] for k in sorted(items)]
