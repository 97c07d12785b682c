"""Find a split's files and pair each annotation with its image.

A split's `images` / `annotations` entry (relative to the dataset root) is either a glob
("leftImg8bit/train/*/*.png") or a folder (searched recursively). Files pair by their place in
the split: the folders the entry's wildcards matched (for a plain folder, the subfolders below it)
plus the stem. Many datasets number frames inside each folder (IDD 0/005506, ScanNet
scene0000_00/color/000000.jpg with scene0000_00/label/000000.png), so the bare name is not enough.
The key is those folders and the stem, joined with '_' and sanitised; a folder the stem already
starts with (Cityscapes frankfurt/frankfurt_000000_000294) is not repeated.

Nothing found is dropped silently: an image with no annotation (and, under pair_by number, an image
whose name holds no number) gets an item that read() reports as "missing label file", naming the
pattern that was searched; a file or folder name that is not valid UTF-8 gets an item that read()
reports with the name's bytes escaped (a key and a UTF-8 record could not name it exactly; rename it).
A split whose images entry ends in a wildcard extension ("*_leftImg8bit.*") takes .jpg, .jpeg and
.png alike (IDD part I ships PNG, part II JPEG).

Options, from the taxonomy's format_options (PAIRING_OPTIONS in the format registry):
  annotation_suffix / image_suffix: an annotation's stem minus annotation_suffix, plus image_suffix,
      is its image's stem (Cityscapes: x_gtFine_labelIds.png <-> x_leftImg8bit.png).
  pair_by: stem (default) | number: pair by the last integer in the stem (SUN RGB-D img-000001.jpg <->
      00000001.png).
  scene_list: a text file (relative to the dataset root; "{split}" is replaced by the split name)
      naming, one a line, the folders that make up the split: only files whose first wildcard folder
      is listed are converted (ScanNet keeps all scenes in one folder).
A split's `index`, for these readers, is a plain-text list of image ids, one a line (Pascal VOC
ImageSets/Segmentation/train.txt): exactly the listed ids are converted. An id may name its folders
("scene0000_00/000000"); a bare id is looked up by stem when that is unambiguous. A listed id, or a
listed scene, with no image or no label file still gets an item, which read() reports as a BadSample
naming the index file, the line and what is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.convert.readers.base import BadSample, WorkItem
from pipeline.convert.readers.common import open_index, quarantine_shared_keys, relative, sanitize_key
from pipeline.errors import BadInput, UnknownName
from pipeline.names import path_name, relative_path
from pipeline.taxonomy.schema import DatasetTaxonomy, SplitSpec

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"\d+")

Folders = tuple[str, ...]
MatchKey = tuple[Folders, object]


def split_spec(tax: DatasetTaxonomy, split: str) -> SplitSpec:
    """The split's entry, its name and paths checked to stay under --out and --root (pipeline/names.py)."""
    if split not in tax.splits:
        raise UnknownName(f"{tax.name}: no split {split!r} (known: {', '.join(sorted(tax.splits))})")
    spec = tax.splits[split]
    path_name(split, f"{tax.name}: split name")
    for what in ("images", "annotations", "index"):
        if getattr(spec, what) is not None:
            relative_path(getattr(spec, what), f"{tax.name}/{split}: {what}")
    return spec


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def list_files(root: Path, pattern: str, exts: Iterable[str]) -> list[Path]:
    """Files a split entry names, sorted. A folder is searched recursively for the given extensions."""
    exts = tuple(e.lower() for e in exts)
    if is_glob(pattern):
        found = [p for p in root.glob(pattern) if p.is_file()]
        if is_glob(Path(pattern).suffix):  # "name.*": only the wanted kinds of file
            found = [p for p in found if p.suffix.lower() in exts]
    else:
        folder = root / pattern
        if not folder.is_dir():
            raise BadSample(folder, "missing folder")
        found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts]
    return sorted(found)


def folder_parts(root: Path, pattern: str, path: Path) -> Folders:
    """The folders of `path` that the split entry does not fix: those its wildcards matched, or, for
    a plain folder, the subfolders below it."""
    rel = path.relative_to(root).parts[:-1]
    if not is_glob(pattern):
        return tuple(rel[len(Path(pattern).parts) :])
    dirs = pattern.split("/")[:-1]
    if "**" not in dirs:
        return tuple(part for part, d in zip(rel, dirs) if is_glob(d))
    at = dirs.index("**")
    head, tail = dirs[:at], dirs[at + 1 :]
    end = len(rel) - len(tail)
    varying = [part for part, d in zip(rel[:at], head) if is_glob(d)] + list(rel[at:end])
    return tuple(varying + [part for part, d in zip(rel[end:], tail) if is_glob(d)])


def guess_path(root: Path, pattern: str, folders: Folders, name: str) -> Path:
    """Where a file named `name` in these folders would be, for reporting it missing."""
    if not is_glob(pattern):
        return root.joinpath(pattern, *folders, name)
    dirs = pattern.split("/")[:-1]
    rest = list(folders)
    filled = []
    for n, d in enumerate(dirs):
        if d == "**":
            later = sum(1 for x in dirs[n + 1 :] if is_glob(x))
            take = max(0, len(rest) - later)
            filled += rest[:take]
            rest = rest[take:]
        elif is_glob(d):
            filled.append(rest.pop(0) if rest else d)
        else:
            filled.append(d)
    return root.joinpath(*filled, name)


def _ext(pattern: str, default: str) -> str:
    last = pattern.rsplit("/", 1)[-1]
    ext = Path(last).suffix
    return ext if is_glob(pattern) and ext and not is_glob(ext) else default


def strip_suffix(stem: str, suffix: str) -> str:
    return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem


def match_key(stem: str, suffix: str, pair_by: str) -> str | int | None:
    """What an image and its annotation have in common: the stem minus its suffix, or its number."""
    base = strip_suffix(stem, suffix)
    if pair_by == "number":
        runs = _DIGITS.findall(base)
        return int(runs[-1]) if runs else None
    if pair_by != "stem":
        raise BadInput(f"pair_by must be 'stem' or 'number', not {pair_by!r}")
    return base


def item_key(folders: Folders, base: str) -> str:
    """Folders then stem, '_'-joined and sanitised; a folder the stem already starts with is dropped."""
    kept = [f for f in folders if not base.startswith(f"{f}_")]
    return sanitize_key("_".join([*kept, base]))


def guess_image_path(root: Path, pattern: str, stem: str) -> Path:
    """Where an image with this stem would be (for reporting it missing, or when only an id is known)."""
    if is_glob(pattern):
        parent, name = pattern.rsplit("/", 1) if "/" in pattern else ("", pattern)
        ext = Path(name).suffix if not is_glob(Path(name).suffix) else ".jpg"
        if not is_glob(parent):
            return root / parent / f"{stem}{ext}"
        return root / f"{stem}{ext}"
    return root / pattern / f"{stem}.jpg"


@dataclass(frozen=True)
class _Layout:
    """One split's pairing settings, read once from the taxonomy."""

    root: Path
    spec: SplitSpec
    ann_pattern: str
    img_suffix: str
    ann_suffix: str
    pair_by: str

    def image_name(self, base: str) -> str:
        return base + self.img_suffix + _ext(self.spec.images, ".jpg")

    def ann_name(self, base: str) -> str:
        return base + self.ann_suffix + _ext(self.ann_pattern, ".png")


def _read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, text) of each non-blank line of a plain-text list; one token a line."""
    try:
        with open_index(path) as f:
            text = f.read().decode()
    except FileNotFoundError:
        raise BadSample(path, f"missing file ({what})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadSample(path, f"cannot read {what}: {e}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 1:
            raise BadSample(path, f"line {number}: expected one {what} entry, got {line.strip()!r}")
        out.append((number, fields[0]))
    return out


def _error_item(key: str, image: Path, ann: Path, root: Path, index: Path | None, error: str) -> WorkItem:
    """An item that read() reports as a BadSample: against `index` (the list file that named it) or,
    without one, against the image."""
    return WorkItem(
        key=key,
        image=str(image),
        annotation=str(ann),
        sources={"image": printable(relative(image, root)), "annotation": printable(relative(ann, root))},
        index=None if index is None else str(index),
        error=error,
    )


def is_utf8_name(path: Path) -> bool:
    """False when the name holds bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    """A name as valid UTF-8 text: undecodable bytes written as \\xNN (what `ls -b` shows)."""
    raw = name.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def _non_utf8_item(root: Path, path: Path, role: str) -> WorkItem:
    """A file whose name is not UTF-8: quarantined under a key made from the name's bytes, because
    a key or record derived from it would name another file."""
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    shown = printable(rel.as_posix())
    digest = hashlib.sha1(os.fsencode(rel)).hexdigest()[:12]
    error = f"{role} file name is not valid UTF-8 ({shown}); rename it to UTF-8 to convert it"
    # The item names the file in printable form: it is never opened, and its BadSample (and so the
    # quarantine report, which must be UTF-8) names it the way `ls -b` shows it.
    shown_path = Path(printable(str(path)))
    return _error_item(f"non-utf8-name-{digest}", shown_path, shown_path, Path(printable(str(root))), None, error)


def pair_split(
    tax: DatasetTaxonomy,
    root: Path,
    split: str,
    annotations: list[Path] | None = None,
    ann_suffix: str | None = None,
    ann_pattern: str | None = None,
) -> list[WorkItem]:
    """One WorkItem per annotation file (the split's PNGs, or the given files found through
    `ann_pattern`), with its image; sorted by key. An image without an annotation gets an item that
    read() reports as a missing label file; an annotation without an image still gets an item whose
    image path does not exist, so read() quarantines it as a missing file. With a scene_list or an
    index, see above."""
    root = Path(root)
    spec = split_spec(tax, split)
    if spec.annotations is None and annotations is None:
        raise BadInput(f"{tax.name}: split {split!r} names no annotations")
    opts = tax.format_options
    lay = _Layout(
        root=root,
        spec=spec,
        ann_pattern=ann_pattern or spec.annotations or "",
        img_suffix=str(opts.get("image_suffix", "") or ""),
        ann_suffix=str(opts.get("annotation_suffix", "") or "") if ann_suffix is None else ann_suffix,
        pair_by=str(opts.get("pair_by", "stem")),
    )

    bad_names: list[WorkItem] = []
    unnumbered: list[Path] = []
    images: dict[MatchKey, Path] = {}
    rivals: dict[MatchKey, list[Path]] = {}  # images that pair with one label file (x.png and x.jpg)
    for path in list_files(root, spec.images, IMAGE_EXTS):
        if not is_utf8_name(path.relative_to(root)):
            bad_names.append(_non_utf8_item(root, path, "image"))
            continue
        m = match_key(path.stem, lay.img_suffix, lay.pair_by)
        if m is None:
            unnumbered.append(path)
            continue
        at = (folder_parts(root, spec.images, path), m)
        if at in images:
            rivals.setdefault(at, [images[at]]).append(path)
            continue
        images[at] = path

    if annotations is None:
        annotations = list_files(root, lay.ann_pattern, (".png",))
    found: dict[MatchKey, Path] = {}
    for ann in annotations:
        if not is_utf8_name(ann.relative_to(root) if ann.is_relative_to(root) else ann):
            bad_names.append(_non_utf8_item(root, ann, "label"))
            continue
        m = match_key(ann.stem, lay.ann_suffix, lay.pair_by)
        found.setdefault((folder_parts(root, lay.ann_pattern, ann), m), ann)

    rival_items = [item for at, paths in rivals.items() for item in _rival_items(lay, at, paths, found.pop(at, None))]
    for at in rivals:
        del images[at]
    extra_items: list[WorkItem] = []
    in_split = None  # with a scene_list, only images of listed scenes belong to the split
    if opts.get("scene_list"):
        found, extra_items, in_split = _keep_scenes(tax, split, lay, found, images, str(opts["scene_list"]))
    if spec.index:
        # The index says which images are the split's; an unlisted image is not part of it.
        items = _listed(tax, split, lay, images, found) + extra_items
    else:
        items = [_pair_item(lay, images, at, ann) for at, ann in found.items()] + extra_items
        unlabelled = [(at, img) for at, img in images.items() if at not in found]
        items += [
            _unlabelled_item(lay, at, img)
            for at, img in unlabelled
            if in_split is None or (at[0] and at[0][0] in in_split)
        ]
        items += [_unnumbered_item(lay, img) for img in unnumbered]
    items += bad_names + rival_items

    # Two files making one key (`a b.jpg` and `a_b.jpg`, a frame as both .png and .jpg): quarantined,
    # naming both, while the rest of the split converts.
    return quarantine_shared_keys(items)


def _pair_item(lay: _Layout, images: dict[MatchKey, Path], at: MatchKey, ann: Path) -> WorkItem:
    folders, m = at
    image = images.get(at) if m is not None else None
    if image is None:
        return _orphan_item(lay, folders, ann)
    return WorkItem(
        key=item_key(folders, strip_suffix(image.stem, lay.img_suffix)),
        image=str(image),
        annotation=str(ann),
        sources={"image": relative(image, lay.root), "annotation": relative(ann, lay.root)},
    )


def _rival_items(lay: _Layout, at: MatchKey, paths: list[Path], ann: Path | None) -> list[WorkItem]:
    """Images that pair with the same label file (IDD's frame as .png and .jpg, SUN's img-000009 and
    img-0000009 under pair_by number): which one it labels is ambiguous, so each is quarantined."""
    folders, _ = at
    names = [relative(p, lay.root) for p in paths]
    items = []
    for image in paths:
        base = strip_suffix(image.stem, lay.img_suffix)
        label = ann or guess_path(lay.root, lay.ann_pattern, folders, lay.ann_name(base))
        error = (f"images {', '.join(repr(n) for n in names)} all pair with the label file "
                 f"{relative(label, lay.root)!r}: which one it labels is ambiguous, so none is converted (rename one)")
        items.append(_error_item(item_key(folders, base), image, label, lay.root, None, error))
    return items


def _orphan_item(lay: _Layout, folders: Folders, ann: Path) -> WorkItem:
    """A label file with no image: reported against the label file itself (the file that exists),
    saying which image was looked for; never as a missing image under a made-up name."""
    image = guess_path(lay.root, lay.spec.images, folders, lay.image_name(strip_suffix(ann.stem, lay.ann_suffix)))
    if lay.pair_by == "number":
        looked = f"an image with the same number matching {lay.spec.images!r}"
    else:
        looked = f"{relative(image, lay.root)}, pattern {lay.spec.images!r}"
    # `index` is the file a planned error is reported against (see the format registry's read()).
    return _error_item(item_key(folders, strip_suffix(image.stem, lay.img_suffix)), image, ann, lay.root, ann,
                       f"no image for this label file (looked for {looked})")


def _unlabelled_item(lay: _Layout, at: MatchKey, image: Path) -> WorkItem:
    """An image with no annotation: reported as a missing label file, with the pattern searched."""
    folders, m = at
    base = strip_suffix(image.stem, lay.img_suffix)
    ann = guess_path(lay.root, lay.ann_pattern, folders, lay.ann_name(base))
    if lay.pair_by == "number":
        looked = f"a file numbered {m} matching {lay.ann_pattern!r}"
    else:
        looked = f"{relative(ann, lay.root)}, pattern {lay.ann_pattern!r}"
    return _error_item(
        item_key(folders, base), image, ann, lay.root, None, f"missing label file (looked for {looked})"
    )


def _unnumbered_item(lay: _Layout, image: Path) -> WorkItem:
    """pair_by number, and the image's name holds no number: it cannot pair with anything."""
    folders = folder_parts(lay.root, lay.spec.images, image)
    return _error_item(
        item_key(folders, image.stem),
        image,
        image,
        lay.root,
        None,
        f"missing label file (pair_by number, and the name {image.name!r} holds no number to pair by)",
    )


def _keep_scenes(
    tax: DatasetTaxonomy,
    split: str,
    lay: _Layout,
    found: dict[MatchKey, Path],
    images: dict[MatchKey, Path],
    option: str,
) -> tuple[dict[MatchKey, Path], list[WorkItem], set[str]]:
    """Only annotations under a listed scene; an item reporting each listed scene that has neither
    labels nor images (a scene with images but no labels is reported image by image)."""
    path = lay.root / relative_path(option.replace("{split}", split), f"{tax.name}: format_options.scene_list")
    scenes = _read_lines(path, "scene_list")
    if any(not folders for folders, _ in found):
        raise BadInput(
            f"{tax.name}/{split}: scene_list needs a wildcard folder in annotations {lay.ann_pattern!r}"
        )
    listed = {name for _, name in scenes}
    kept = {at: ann for at, ann in found.items() if at[0][0] in listed}
    present = {at[0][0] for at in kept} | {at[0][0] for at in images if at[0]}
    missing = []
    for number, name in scenes:
        if name in present:
            continue
        where = guess_path(lay.root, lay.ann_pattern, (name,), "")
        missing.append(
            _error_item(
                sanitize_key(f"missing-scene-{name}"),
                where,
                where,
                lay.root,
                path,
                f"line {number}: scene {name!r} has no label files under {relative(where, lay.root)}",
            )
        )
    return kept, missing, listed


def _listed(
    tax: DatasetTaxonomy,
    split: str,
    lay: _Layout,
    images: dict[MatchKey, Path],
    found: dict[MatchKey, Path],
) -> list[WorkItem]:
    """Exactly the ids the split's index lists, each with its image and label, or an error item."""
    assert lay.spec.index is not None
    index = lay.root / lay.spec.index
    # A bare id is found by stem alone when one folder holds it.
    by_match: dict[object, set[Folders]] = {}
    for folders, m in [*images, *found]:
        by_match.setdefault(m, set()).add(folders)
    first_line: dict[str, int] = {}
    items = []
    for number, entry in _read_lines(index, "index"):
        *dirs, name = entry.strip("/").split("/")
        if Path(name).suffix.lower() in IMAGE_EXTS:
            name = Path(name).stem
        base = strip_suffix(name, lay.img_suffix)
        m = match_key(name, lay.img_suffix, lay.pair_by)
        folders: Folders = tuple(dirs)
        if not dirs and m is not None:
            options = sorted(by_match.get(m, set()))
            if len(options) > 1:
                shown = ", ".join("/".join(f) or "." for f in options[:5])
                raise BadSample(
                    index, f"line {number}: id {entry!r} is in several folders ({shown}); name the folder"
                )
            folders = options[0] if options else ()
        key = item_key(folders, base)
        if key in first_line:
            raise BadSample(
                index, f"line {number}: id {entry!r} listed twice (first on line {first_line[key]})"
            )
        first_line[key] = number
        image, ann = images.get((folders, m)), found.get((folders, m))
        if image is not None and ann is not None:
            items.append(_pair_item(lay, images, (folders, m), ann))
            continue
        lacks = []
        if image is None:
            image = guess_path(lay.root, lay.spec.images, folders, lay.image_name(base))
            lacks.append(f"image (looked for {relative(image, lay.root)})")
        if ann is None:
            ann = guess_path(lay.root, lay.ann_pattern, folders, lay.ann_name(base))
            lacks.append(f"label file (looked for {relative(ann, lay.root)})")
        error = f"line {number}: listed id {entry!r} has no {' and no '.join(lacks)}"
        items.append(_error_item(key, image, ann, lay.root, index, error))
    return items
