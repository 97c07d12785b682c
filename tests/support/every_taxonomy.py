"""One fixture builder per annotation format, driven only by a taxonomy YAML: it writes a tiny dataset
(a few small images) in that YAML's split layout (its globs or folders, suffixes, pair_by, index
lists, scene_list) and returns, per expected key, what the reader must produce. The truth is worked
out here from the YAML's raw ids (tax.raw_to_target()), never through reader code.

BUILDERS maps a format name to its builder; a YAML whose format is missing here has no fixture.
Builders are called once per split, all into the same root, as the splits of a real release share
folders (Pascal VOC's JPEGImages)."""

from __future__ import annotations

import fnmatch
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.convert.layouts import panoptic_rgb, write_coco_index
from pipeline.taxonomy.schema import DatasetTaxonomy
from support.generated import jpeg, png, write_objects365, write_openimages
from support.layout import place


@dataclass
class Expected:
    image: Path  # the file whose bytes the sample must carry
    label: np.ndarray | None = None  # HxW class indices / ignore index, in the taxonomy's dtype
    boxes: list[list[int]] | None = None


Builder = Callable[[DatasetTaxonomy, Path, str, int], dict[str, Expected]]


class NoBuilder(Exception):
    """The format exists but this layout variant has no fixture builder yet."""


def _is_glob(part: str) -> bool:
    return any(c in part for c in "*?[")


def expected_labels(tax: DatasetTaxonomy, raw: np.ndarray) -> np.ndarray:
    """Raw ids -> targets with a plain dict, one distinct value at a time."""
    table = tax.raw_to_target()
    out = np.zeros(raw.shape, dtype=tax.label_dtype)
    for value in np.unique(raw).tolist():
        out[raw == value] = table[value]
    return out


def raw_pool(tax: DatasetTaxonomy) -> np.ndarray:
    """Every integer raw id a label PNG may hold: each class's and each ignored value that fits."""
    ids = [r for c in tax.classes for r in c.all_raw_ids] + list(tax.ignore_values)
    if not all(isinstance(r, int) for r in ids):
        raise NoBuilder(f"{tax.name}: a label PNG fixture needs integer raw ids")
    return np.array(sorted({r for r in ids if r >= 0}), dtype=np.int64)  # -1 never occurs in a PNG


def raw_map(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A small array holding every pool value at least once, shuffled; sizes differ per sample."""
    width = 16 + 2 * n
    height = max(6, math.ceil(len(pool) / width)) + n
    flat = np.resize(np.random.default_rng(seed).permutation(pool), height * width)
    return flat.reshape(height, width)


# --- file names that fit a split entry -------------------------------------------------------------
def _fill(last: str, token: str) -> str:
    """A file name matching a glob's last part: the first '*' becomes token, others nothing."""
    name = last.replace("*", token, 1).replace("*", "").replace("?", "0")
    assert not _is_glob(name), f"cannot make a file name from {last!r}"
    return name


def _wild_dirs(pattern: str) -> int:
    """How many folders a file's place adds: one per wildcard folder; a plain folder gets one subfolder."""
    if not _is_glob(pattern):
        return 1
    dirs = pattern.split("/")[:-1]
    if "**" in dirs:
        raise NoBuilder(f"pattern {pattern!r}: '**' layouts have no fixture builder")
    return sum(1 for d in dirs if _is_glob(d))


def _path(root: Path, pattern: str, folders: list[str], name: str) -> Path:
    """root/pattern with each wildcard folder replaced by the next of `folders`, then `name`."""
    if not _is_glob(pattern):
        return root.joinpath(pattern, *folders, name)
    rest = list(folders)
    dirs = [rest.pop(0) if _is_glob(d) else d for d in pattern.split("/")[:-1]]
    last = pattern.split("/")[-1]
    assert fnmatch.fnmatch(name, last), f"{name} does not match {pattern}"
    return root.joinpath(*dirs, name)


@dataclass
class PairedFile:
    key: str
    image: Path
    annotation: Path  # the label PNG's path, or where a polygon JSON's stem points
    base: str
    id: str  # as an index list would name it
    folders: list[str]


def paired_layout(
    tax: DatasetTaxonomy, root: Path, split: str, n_split: int
) -> tuple[list[PairedFile], set[str]]:
    """Three samples' paths in the split's layout and the keys the split must convert. With wildcard
    folders, samples 0 and 1 share a frame name in different folders (IDD, ScanNet number frames per
    folder). With an index or a scene_list, sample 2 is left out of it and must not be converted."""
    spec = tax.splits[split]
    opts = tax.format_options
    assert spec.annotations, f"{tax.name}/{split}: a paired layout needs annotations"
    img_suffix = str(opts.get("image_suffix", "") or "")
    ann_suffix = str(opts.get("annotation_suffix", "") or "")
    by_number = opts.get("pair_by", "stem") == "number"
    depth = _wild_dirs(spec.images)
    if depth != _wild_dirs(spec.annotations):
        raise AssertionError(
            f"{tax.name}/{split}: images {spec.images!r} and annotations {spec.annotations!r} have different "
            "wildcard folders, so an annotation cannot be paired by its place"
        )
    img_last = spec.images.split("/")[-1] if _is_glob(spec.images) else "*.jpg"
    ann_last = spec.annotations.split("/")[-1] if _is_glob(spec.annotations) else "*.png"
    files = []
    for n in range(3):
        folders = [f"{'abc'[n]}{d}" for d in range(depth)]
        shared = 0 if depth and n == 1 else n  # same frame name in another folder
        number = 1 + 10 * n_split + shared
        token = f"{number:06d}" if by_number else f"s{n_split}x{shared}"
        image_name = _fill(img_last, token)
        stem = Path(image_name).stem
        assert not img_suffix or stem.endswith(img_suffix), f"{image_name} lacks image_suffix {img_suffix!r}"
        base = stem[: len(stem) - len(img_suffix)]
        if by_number:
            ann_name = _fill(ann_last, f"{number:08d}")
        else:
            ann_name = base + ann_suffix + ".png"
            assert fnmatch.fnmatch(ann_name, ann_last), (
                f"{ann_name} (stem + annotation_suffix) does not match {ann_last!r}"
            )
        files.append(
            PairedFile(
                key="_".join([*folders, base]),
                image=_path(root, spec.images, folders, image_name),
                annotation=_path(root, spec.annotations, folders, ann_name),
                base=base,
                id="/".join([*folders, base]),
                folders=folders,
            )
        )
    keep = list(files)
    if spec.index or opts.get("scene_list"):
        keep = files[:2]
    if spec.index:
        index = root / spec.index
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text("".join(f"{f.id}\n" for f in keep))
    if opts.get("scene_list"):
        if not depth:
            raise AssertionError(f"{tax.name}/{split}: scene_list needs a wildcard folder to name scenes")
        scenes = root / str(opts["scene_list"]).replace("{split}", split)
        scenes.parent.mkdir(parents=True, exist_ok=True)
        scenes.write_text("".join(f"{f.folders[0]}\n" for f in keep))
    return files, {f.key for f in keep}


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _image_bytes(path: Path, height: int, width: int, seed: int) -> bytes:
    if path.suffix.lower() == ".png":
        return png(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))
    return jpeg(width, height, seed)


def _palette_png(raw: np.ndarray, tax: DatasetTaxonomy) -> bytes:
    """Mode P: the pixel is the palette index. The palette holds the classes' colours (or a ramp),
    so a reader that looked at colours instead of indices would be caught."""
    im = Image.fromarray(raw.astype(np.uint8))
    palette = np.stack([np.arange(256)[::-1], np.arange(256), np.full(256, 77)], 1).astype(np.uint8)
    for c in tax.classes:
        for r in c.all_raw_ids:
            if c.color is not None and isinstance(r, int) and 0 <= r < 256:
                palette[r] = c.color
    im.putpalette(palette.reshape(-1).tolist())
    assert im.mode == "P"
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _index_png(raw: np.ndarray) -> bytes:
    return png(raw.astype(np.uint16 if raw.max() > 255 else np.uint8))


def dense_pairs(encoding: str) -> Builder:
    """Builder for label PNGs paired with images: `L` (or 16-bit), `P` (palette index) or `auto`
    (P when every class has a colour, as palette datasets list them, else L)."""

    def build(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
        files, keep = paired_layout(tax, root, split, n_split)
        pool = raw_pool(tax)
        mode = encoding
        if mode == "auto":
            mode = "P" if all(c.color is not None for c in tax.classes) and pool.max() < 256 else "L"
        out = {}
        for n, f in enumerate(files):
            raw = raw_map(pool, n, seed=100 * n_split + n)
            _write(f.image, _image_bytes(f.image, *raw.shape, seed=n))
            _write(f.annotation, _palette_png(raw, tax) if mode == "P" else _index_png(raw))
            if f.key in keep:
                out[f.key] = Expected(image=f.image, label=expected_labels(tax, raw))
        return out

    return build


def build_ade20k(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    variant = tax.format_options.get("variant", "challenge")
    if variant != "challenge":
        raise NoBuilder(f"ade20k variant {variant!r} has no fixture builder (only 'challenge')")
    return dense_pairs("L")(tax, root, split, n_split)


def build_png_folder(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    mode = tax.format_options.get("mode", "index")
    if mode == "index":
        return dense_pairs("auto")(tax, root, split, n_split)
    assert mode == "color", f"{tax.name}: unknown png_folder mode {mode!r}"
    files, keep = paired_layout(tax, root, split, n_split)
    colours = [list(c.color) for c in tax.classes] + [
        list(c) for c in tax.format_options.get("ignore_colors", [])
    ]
    targets = [tax.ignore_index if c.ignore else i for i, c in enumerate(tax.classes)]
    targets += [tax.ignore_index] * (len(colours) - len(tax.classes))
    out = {}
    for n, f in enumerate(files):
        which = raw_map(np.arange(len(colours)), n, seed=100 * n_split + n)
        rgb = np.array(colours, dtype=np.uint8)[which]
        _write(f.image, _image_bytes(f.image, *which.shape, seed=n))
        _write(f.annotation, png(rgb))
        if f.key in keep:
            out[f.key] = Expected(image=f.image, label=np.array(targets, dtype=tax.label_dtype)[which])
    return out


def build_idd(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """Level-3 id PNGs for samples 0 and 2; sample 1 (same frame name as 0, another folder) has only
    the polygon JSON: background, a band, and two boxes, the last drawn on top."""
    opts = tax.format_options
    files, keep = paired_layout(tax, root, split, n_split)
    poly_suffix = str(opts.get("polygon_suffix", "_gtFine_polygons"))
    ann_suffix = str(opts.get("annotation_suffix", "") or "")
    names = dict(opts["polygon_label_to_level3"])
    pool = raw_pool(tax)
    out = {}
    for n, f in enumerate(files):
        if n != 1:
            raw = raw_map(pool, n, seed=100 * n_split + n)
            _write(f.annotation, _index_png(raw))
        else:
            counted = [k for k, v in names.items() if v != 255]
            band, box, top = counted[0], counted[len(counted) // 2], counted[-1]
            height, width = 20, 30
            raw = np.full((height, width), names.get("unlabeled", 255), dtype=np.int64)
            objects = []
            for label, (x0, y0, x1, y1) in (
                (band, (0, 12, 29, 19)),
                (box, (3, 2, 12, 15)),
                (top, (8, 5, 20, 9)),
            ):
                objects.append(
                    {"label": label, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "deleted": 0}
                )
                raw[y0 : y1 + 1, x0 : x1 + 1] = names[label]  # a filled polygon includes its border
            stem = Path(f.annotation.name).stem
            json_name = stem[: len(stem) - len(ann_suffix)] + poly_suffix + ".json"
            (f.annotation.parent).mkdir(parents=True, exist_ok=True)
            (f.annotation.parent / json_name).write_text(
                json.dumps({"imgHeight": height, "imgWidth": width, "objects": objects})
            )
        _write(f.image, _image_bytes(f.image, *raw.shape, seed=n))
        if f.key in keep:
            out[f.key] = Expected(image=f.image, label=expected_labels(tax, raw))
    return out


def build_coco_panoptic(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """Two images, each with three segments of different categories and a void (id 0) strip; segment
    ids use all three channels so R + 256 G + 65536 B is exercised."""
    spec = tax.splits[split]
    assert spec.index and spec.annotations, f"{tax.name}/{split}: coco_panoptic needs index and annotations"
    cats = [c.raw_id for c in tax.classes]
    table = tax.raw_to_target()
    images, annotations, out = [], [], {}
    for n in range(2):
        stem = f"{n_split:04d}{n:08d}"
        height, width = 10 + n, 14
        ids = [5 + n, 256 * 3 + 1, 65536 * 2 + 256 + 9]
        chosen = [cats[0], cats[len(cats) // 2 + n], cats[-1]]
        seg = np.zeros((height, width), dtype=np.int64)
        seg[:, 2:6], seg[:, 6:10], seg[:, 10:] = ids
        image = place(root, spec.images, f"{stem}.jpg", data=jpeg(width, height, n))
        place(root, spec.annotations, f"{stem}.png", data=png(panoptic_rgb(seg)))
        images.append({"id": 100 + n, "file_name": f"{stem}.jpg", "width": width, "height": height})
        annotations.append(
            {
                "image_id": 100 + n,
                "file_name": f"{stem}.png",
                "segments_info": [{"id": i, "category_id": c, "area": 1} for i, c in zip(ids, chosen)],
            }
        )
        label = np.full((height, width), tax.ignore_index, dtype=tax.label_dtype)
        for i, c in zip(ids, chosen):
            label[seg == i] = table[c]
        out[stem] = Expected(image=image, label=label)
    categories = [{"id": c.raw_id, "name": c.name} for c in tax.classes]
    write_coco_index(root / spec.index, images, annotations, categories)
    return out


def build_coco_instances(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    """One image with a large and a small RLE mask inside it (the small one must stay on top) and
    pixels no mask covers (ignore); box supervision gets the two boxes instead."""
    from pycocotools import mask as mask_utils

    spec = tax.splits[split]
    assert spec.index, f"{tax.name}/{split}: coco_instances needs index"
    table = tax.raw_to_target()
    big_id, small_id = [c.raw_id for c in tax.classes if not c.ignore][:2]
    height, width = 12, 16
    big = np.zeros((height, width), np.uint8)
    big[1:11, 1:12] = 1
    small = np.zeros((height, width), np.uint8)
    small[3:6, 4:8] = 1
    anns = []
    for n, (mask, cat, bbox) in enumerate(((small, small_id, [4, 3, 4, 3]), (big, big_id, [1, 1, 11, 10]))):
        rle = mask_utils.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
        anns.append(
            {"id": n + 1, "image_id": 7, "category_id": cat, "segmentation": rle, "bbox": bbox, "iscrowd": 0}
        )
    stem = f"inst_{n_split}"
    image = place(root, spec.images, f"{stem}.jpg", data=jpeg(width, height, 3))
    write_coco_index(root / spec.index, [{"id": 7, "file_name": f"{stem}.jpg", "width": width, "height": height}], anns)
    if tax.supervision.value == "box":
        boxes = [[4, 3, 8, 6, table[small_id]], [1, 1, 12, 11, table[big_id]]]
        return {stem: Expected(image=image, boxes=[b for b in boxes if b[4] != tax.ignore_index])}
    label = np.full((height, width), tax.ignore_index, dtype=tax.label_dtype)
    label[big == 1] = table[big_id]
    label[small == 1] = table[small_id]
    return {stem: Expected(image=image, label=label)}


def build_openimages(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    spec = tax.splits[split]
    truth = write_openimages(tax, root, split)
    return {
        key: Expected(image=_path(root, spec.images, ["x"], f"{key}.jpg"), label=label)
        for key, label in truth.items()
    }


def build_objects365(tax: DatasetTaxonomy, root: Path, split: str, n_split: int) -> dict[str, Expected]:
    spec = tax.splits[split]
    truth = write_objects365(tax, root, split)
    where = {
        "objects365_v1_00000001": root / spec.images / "patch0" / "objects365_v1_00000001.jpg",
        "objects365_v2_00000002": root / spec.images / "objects365_v2_00000002.jpg",
    }
    return {key: Expected(image=where[key], boxes=boxes) for key, boxes in truth.items()}


BUILDERS: dict[str, Builder] = {
    "ade20k": build_ade20k,
    "coco_panoptic": build_coco_panoptic,
    "mapillary": dense_pairs("P"),
    "cityscapes": dense_pairs("L"),
    "bdd100k": dense_pairs("L"),
    "idd": build_idd,
    "sunrgbd": dense_pairs("L"),
    "openimages_v6": build_openimages,
    "objects365": build_objects365,
    "png_folder": build_png_folder,
    "coco_instances": build_coco_instances,
}
