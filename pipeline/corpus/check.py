"""`ssiw corpus check`: what is on disk against each release's official counts, without converting.

For every dataset and split of a recipe: the images found where the taxonomy's split says they are (its
`images` glob, or every image file below its folder), the release's count of them (and the recipe's
cap), whether the split's index file is there, and which of the release's parts (folders or archives,
`release.parts`) are missing, consecutive numbers collapsed ("train/patch11..patch50"). Nothing is
opened or parsed: a multi-GB index is only looked for, and the files are counted with os.scandir, which
reads each directory's entries once without a stat per file (about a million files a second, see
bench/bench_corpus_check.py), so a partial download is named in seconds to minutes, not hours into a
convert.

Status of a split: missing (no image, or no root), partial (fewer images than the release, a part or
the index absent), more (more images than the release: fine, e.g. all of OpenImages' boxable images
where the count is the segmented ones), ok.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from fnmatch import translate
from pathlib import Path

from pipeline.convert.absent import runs
from pipeline.convert.readers.pairing import IMAGE_EXTS, is_glob
from pipeline.corpus.recipe import CorpusRecipe, DatasetRecipe
from pipeline.corpus.resolve import ResolvedDataset, load_recipe_taxonomies, resolve

OK, PARTIAL, MISSING, MORE = "ok", "partial", "missing", "more"
PROBLEM_STATUSES = (PARTIAL, MISSING)

# Called with (what is being counted, files counted so far) after each directory: the CLI's spinner.
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class SplitReport:
    dataset: str
    split: str
    root: str
    root_exists: bool
    images: str  # the taxonomy's images glob or folder, relative to the root
    found: int
    expected: int | None  # the release's count; None when the recipe gives none
    cap: str | None  # "max 1,000,000" / "25%" when the recipe converts a seeded subset
    index: str | None  # the split's index file, relative to the root
    index_present: bool | None  # None: the split has no index
    parts: int  # how many parts the release lists for the split (after brace expansion)
    missing_parts: tuple[str, ...] = ()  # runs of missing parts, relative to the root
    missing_part_count: int = 0
    status: str = OK
    problems: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return asdict(self)


# --- counting -----------------------------------------------------------------------------------

def _matcher(component: str) -> Callable[[str], object]:
    return re.compile(translate(component)).match


def _scandir(folder: str):
    """A directory's entries, or none when it is not there (or not readable)."""
    try:
        return os.scandir(folder)
    except OSError:
        return None


def _count_tree(folder: str, exts: tuple[str, ...], progress: Progress | None, what: str, start: int) -> int:
    """Image files anywhere below `folder` (a split whose `images` entry is a plain folder)."""
    count, stack = 0, [folder]
    while stack:
        entries = _scandir(stack.pop())
        if entries is None:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(entry.path)
                elif entry.name.lower().endswith(exts) and entry.is_file():
                    count += 1
        if progress:
            progress(what, start + count)
    return count


def _count_glob(folder: str, parts: list[str], exts: tuple[str, ...] | None, progress: Progress | None,
                what: str, start: int) -> int:
    """Files matching the glob `parts` (path components, '**' for any depth) below `folder`; with
    `exts`, only those kinds of file (a pattern ending in '.*')."""
    head, rest = parts[0], parts[1:]
    if head == "**":
        count = _count_glob(folder, rest, exts, progress, what, start) if rest else 0
        entries = _scandir(folder)
        if entries is None:
            return count
        with entries:
            subdirs = [e.path for e in entries if e.is_dir()]
        for sub in subdirs:
            count += _count_glob(sub, parts, exts, progress, what, start + count)
        return count
    if not is_glob(head):  # a fixed name: no listing needed
        path = os.path.join(folder, head)
        if rest:
            return _count_glob(path, rest, exts, progress, what, start)
        return int(os.path.isfile(path) and (exts is None or head.lower().endswith(exts)))
    match, count = _matcher(head), 0
    entries = _scandir(folder)
    if entries is None:
        return 0
    if rest:
        with entries:
            subdirs = [e.path for e in entries if match(e.name) and e.is_dir()]
        for sub in subdirs:
            count += _count_glob(sub, rest, exts, progress, what, start + count)
        return count
    with entries:
        for entry in entries:
            if match(entry.name) and (exts is None or entry.name.lower().endswith(exts)) and entry.is_file():
                count += 1
    if progress:
        progress(what, start + count)
    return count


def count_images(root: Path, pattern: str, progress: Progress | None = None, what: str = "") -> int:
    """How many files the convert would take as the split's images: those matching the `images` glob
    (for a wildcard extension, '*.*', only .jpg/.jpeg/.png), or every image file below the folder, as
    pipeline.convert.readers.pairing.list_files finds them."""
    if not is_glob(pattern):
        return _count_tree(str(root / pattern), IMAGE_EXTS, progress, what, 0)
    exts = IMAGE_EXTS if is_glob(Path(pattern).suffix) else None
    return _count_glob(str(root), pattern.split("/"), exts, progress, what, 0)


# --- parts --------------------------------------------------------------------------------------

def expand_parts(patterns: Iterable[str]) -> list[str]:
    """Each pattern's brace expansion ('train/patch{0..2}' -> train/patch0, patch1, patch2), in order,
    each part once."""
    from braceexpand import braceexpand

    return list(dict.fromkeys(part for pattern in patterns for part in braceexpand(pattern)))


def _nonempty(path: str) -> bool:
    """A folder with at least one entry, or a file with at least one byte."""
    try:
        if os.path.isdir(path):
            with os.scandir(path) as entries:
                return next(entries, None) is not None
        return os.path.getsize(path) > 0
    except OSError:
        return False


def missing_parts(root: Path, parts: list[str]) -> list[str]:
    """The parts (relative to `root`) that are absent or empty; a glob part is absent when nothing
    matches it. Globs in one folder share a single listing of it, which stops as soon as every one has
    matched (16 mask-archive patterns over 2.7M masks: one pass, usually a few entries)."""
    absent = []
    by_folder: dict[str, list[str]] = defaultdict(list)
    for part in parts:
        folder, name = os.path.split(part)
        if is_glob(folder):
            if _count_glob(str(root), part.split("/"), None, None, "", 0) == 0:  # rare: no early stop
                absent.append(part)
        elif is_glob(name):
            by_folder[folder].append(part)
        elif not _nonempty(str(root / part)):
            absent.append(part)
    for folder, globs in by_folder.items():
        waiting = {part: _matcher(os.path.basename(part)) for part in globs}
        entries = _scandir(str(root / folder))
        if entries is not None:
            with entries:
                for entry in entries:
                    hit = [part for part, match in waiting.items() if match(entry.name)]
                    for part in hit:
                        del waiting[part]
                    if not waiting:
                        break
        absent += list(waiting)
    order = {part: n for n, part in enumerate(parts)}
    return sorted(absent, key=order.__getitem__)


def part_runs(parts: list[str]) -> list[str]:
    """Missing parts named compactly: numbered siblings collapse ('train/patch11..patch50')."""
    by_parent: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for part in parts:
        parent, name = os.path.split(part)
        by_parent[parent].append((name, 1))
    return [f"{parent}/{label}" if parent else label
            for parent, names in by_parent.items() for label, _ in runs(names)]


# --- one split, the whole recipe ----------------------------------------------------------------

def _cap(entry: DatasetRecipe) -> str | None:
    if entry.max_samples is not None:
        return f"max {entry.max_samples:,}"
    if entry.fraction is not None:
        return f"{entry.fraction:.0%}"
    return None


def _status(report: SplitReport) -> str:
    if not report.root_exists or report.found == 0:
        return MISSING
    short = report.expected is not None and report.found < report.expected
    if short or report.missing_parts or report.index_present is False:
        return PARTIAL
    if report.expected is not None and report.found > report.expected:
        return MORE
    return OK


def _problems(r: SplitReport) -> tuple[list[str], list[str]]:
    """(problems, notes) of a split, one line each."""
    name = f"{r.dataset}/{r.split}"
    if not r.root_exists:
        return [f"{r.dataset}: root {r.root} not found (set data_root or the entry's root, or --data-root)"], []
    problems, notes = [], []
    if r.found == 0:
        problems.append(f"{name}: no images match {r.images} under {r.root}")
    elif r.expected is not None and r.found < r.expected:
        problems.append(f"{name}: {r.found:,} of {r.expected:,} images, {r.expected - r.found:,} short")
    if r.missing_parts:
        problems.append(f"{name}: {r.missing_part_count} of {r.parts} parts not found: {', '.join(r.missing_parts)}")
    if r.index_present is False:
        problems.append(f"{name}: index {r.index} not found under {r.root}")
    if r.expected is not None and r.found > r.expected:
        notes.append(f"{name}: {r.found:,} images, {r.found - r.expected:,} more than the release's {r.expected:,}")
    if r.expected is None:
        notes.append(f"{name}: the recipe gives no release count to compare with")
    return problems, notes


def check_split(ds: ResolvedDataset, split: str, progress: Progress | None = None) -> SplitReport:
    """Count one split's images on disk and look for its index and its release parts."""
    spec = ds.taxonomy.splits[split]
    release = ds.entry.release
    root_exists = ds.root.is_dir()
    found = count_images(ds.root, spec.images, progress, f"{ds.entry.name}/{split}") if root_exists else 0
    parts = expand_parts(release.parts.get(split, [])) if release else []
    absent = missing_parts(ds.root, parts) if root_exists else []  # a missing root is said once, not per part
    report = SplitReport(
        dataset=ds.entry.name, split=split, root=str(ds.root), root_exists=root_exists, images=spec.images,
        found=found, expected=release.images.get(split) if release else None, cap=_cap(ds.entry),
        index=spec.index, index_present=None if spec.index is None else (ds.root / spec.index).is_file(),
        parts=len(parts), missing_parts=tuple(part_runs(absent)), missing_part_count=len(absent))
    problems, notes = _problems(report)
    return replace(report, status=_status(report), problems=tuple(problems), notes=tuple(notes))


def check_recipe(recipe: CorpusRecipe, where: str = "recipe", progress: Progress | None = None) -> list[SplitReport]:
    """Every split of every dataset of a validated recipe against its release; BadInput naming every
    problem of the recipe (unknown datasets, splits, release splits) before anything is counted."""
    resolved = resolve(recipe, load_recipe_taxonomies(recipe), where)
    return [check_split(ds, split, progress) for ds in resolved for split in ds.splits]


def has_problems(reports: list[SplitReport]) -> bool:
    return any(r.status in PROBLEM_STATUSES for r in reports)


def problem_lines(reports: list[SplitReport]) -> list[str]:
    """Every problem once, in recipe order (a missing root is one line, not one per split)."""
    return list(dict.fromkeys(line for r in reports for line in r.problems))
