"""Layout writer of the formats that pair each image with a label PNG (ade20k, cityscapes, bdd100k, idd,
sunrgbd, mapillary, png_folder): names from the split's globs, image_suffix / annotation_suffix /
pair_by and one folder per wildcard folder, plus the split's index list and scene_list."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.convert.layouts import Files, index_png, png
from pipeline.taxonomy.schema import DatasetTaxonomy


@dataclass(frozen=True)
class Pair:
    """One image and its label: raw ids per pixel (a palette PNG for mapillary, and for png_folder when
    every class has a colour; else L or 16-bit), H x W x 3 colours (png_folder colour mode), or an IDD
    polygon document (written as <base><polygon_suffix>.json instead of a PNG)."""

    name: str  # fills the image glob's first '*' (the stem, when the split names a plain folder)
    image: bytes
    label: np.ndarray | dict
    folders: tuple[str, ...] = ()  # one per wildcard folder (any under a plain folder: it is searched)
    label_name: str | None = None  # pair_by number: fills the annotation glob's '*', when not `name`
    listed: bool = True  # in the split's index / scene_list, when it has one


def _is_glob(part: str) -> bool:
    return any(c in part for c in "*?[")


def _fill(last: str, token: str) -> str:
    """A file name matching a glob's last part: the first '*' becomes token, others nothing; a
    wildcard extension ("name.*", IDD's PNG-or-JPEG images) becomes .jpg."""
    if last.endswith(".*"):
        last = last[:-2] + ".jpg"
    name = last.replace("*", token, 1).replace("*", "").replace("?", "0")
    assert not _is_glob(name), f"cannot make a file name from {last!r}"
    return name


def wild_folders(pattern: str) -> int | None:
    """How many wildcard folders a split's glob has; None for a plain folder."""
    dirs = pattern.split("/")[:-1]
    if not _is_glob(pattern):
        return None
    if "**" in dirs:
        raise ValueError(f"pattern {pattern!r}: '**' layouts have no writer")
    return sum(1 for d in dirs if _is_glob(d))


def located(root: Path, pattern: str, folders: tuple[str, ...], name: str) -> Path:
    """root/pattern with each wildcard folder replaced by the next of `folders`, then `name`."""
    if not _is_glob(pattern):
        return root.joinpath(pattern, *folders, name)
    rest = list(folders)
    dirs = [rest.pop(0) if _is_glob(d) else d for d in pattern.split("/")[:-1]]
    assert fnmatch.fnmatch(name, pattern.split("/")[-1]), f"{name} does not match {pattern}"
    return root.joinpath(*dirs, name)


def _label_png(tax: DatasetTaxonomy, raw: np.ndarray) -> bytes:
    if raw.ndim == 3:
        return png(raw.astype(np.uint8))
    coloured = all(c.color is not None for c in tax.classes) and raw.max() < 256
    if not (tax.format == "mapillary" or (tax.format == "png_folder" and coloured)):
        return index_png(raw)
    # Mode P: the pixel is the palette index. The palette holds the classes' colours (or a ramp), so a
    # reader that looked at colours instead of indices would be caught.
    palette = np.stack([np.arange(256)[::-1], np.arange(256), np.full(256, 77)], 1).astype(np.uint8)
    for c in tax.classes:
        for r in c.all_raw_ids:
            if c.color is not None and isinstance(r, int) and 0 <= r < 256:
                palette[r] = c.color
    return png(raw.astype(np.uint8), palette=palette)


def write_pairs(tax: DatasetTaxonomy, root: Path, split: str, pairs: list[Pair]) -> dict[str, Path]:
    """Returns key -> image file; the key is the pairing readers': the folders and the image stem less
    image_suffix, joined by '_'."""
    spec, opts = tax.splits[split], tax.format_options
    assert spec.annotations, f"{tax.name}/{split}: a paired layout needs annotations"
    img_suffix, ann_suffix = (str(opts.get(k, "") or "") for k in ("image_suffix", "annotation_suffix"))
    depth, ann_depth = wild_folders(spec.images), wild_folders(spec.annotations)
    assert None in (depth, ann_depth) or depth == ann_depth, (
        f"{tax.name}/{split}: images {spec.images!r} and annotations {spec.annotations!r} have different "
        "wildcard folders, so an annotation cannot be paired by its place"
    )
    img_last = spec.images.split("/")[-1] if _is_glob(spec.images) else "*.jpg"
    ann_last = spec.annotations.split("/")[-1] if _is_glob(spec.annotations) else "*.png"
    files, placed, listed = Files(), {}, []
    for pair in pairs:
        assert depth is None or len(pair.folders) == depth, f"{tax.name}/{split}: {pair.name} needs {depth} folders"
        image_name = _fill(img_last, pair.name)
        stem = Path(image_name).stem
        assert stem.endswith(img_suffix), f"{image_name} lacks image_suffix {img_suffix!r}"
        base = stem[: len(stem) - len(img_suffix)]
        ann_name = _fill(ann_last, pair.label_name) if pair.label_name else base + ann_suffix + ".png"
        assert fnmatch.fnmatch(ann_name, ann_last), f"{ann_name} does not match {ann_last!r}"
        annotation = located(root, spec.annotations, pair.folders, ann_name)
        if isinstance(pair.label, dict):
            polygons = base + str(opts.get("polygon_suffix", "_gtFine_polygons")) + ".json"
            files.put(annotation.with_name(polygons), pair.label, lambda doc: json.dumps(doc).encode())
        else:
            files.put(annotation, pair.label, lambda raw: _label_png(tax, raw))
        key = "_".join([*pair.folders, base])
        placed[key] = files.put(located(root, spec.images, pair.folders, image_name), pair.image)
        if pair.listed:
            listed.append((*pair.folders, base))
    if spec.index:
        files.put(root / spec.index, "".join("/".join(ids) + "\n" for ids in listed).encode())
    if opts.get("scene_list"):
        assert all(len(ids) > 1 for ids in listed), f"{tax.name}/{split}: scene_list needs a folder per scene"
        scenes = "".join(ids[0] + "\n" for ids in listed).encode()
        files.put(root / str(opts["scene_list"]).replace("{split}", split), scenes)
    return placed
