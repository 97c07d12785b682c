"""Which folders of a split are missing altogether, said once before their files are quarantined one by one.

A user who fetched 10 of Objects365's 51 image archives gets 1.4M "file not found" quarantine lines; the
useful message is "images/v2/patch11..patch50: not found, 1,400,000 files". Only folders that do not
exist are summarised: a missing file in a folder that is there stays an ordinary quarantine entry.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

SHOWN = 12  # lines at most; the rest is counted
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")
_DIGIT_RUNS = re.compile(r"(\d+)")


def _topmost_absent(folder: str, root: str, known: dict[str, bool]) -> str:
    """The highest folder above `folder` (itself included, `root` excluded) that does not exist."""
    top = folder
    parent = os.path.dirname(top)
    while parent and parent != top and parent != root and parent.startswith(root) and not _isdir(parent, known):
        top, parent = parent, os.path.dirname(parent)
    return top


def _isdir(folder: str, known: dict[str, bool]) -> bool:
    if folder not in known:
        known[folder] = os.path.isdir(folder)
    return known[folder]


def runs(names: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """('patch11', n), ('patch12', m), ... -> ('patch11..patch12', n + m): consecutive numbers with the
    same prefix collapse into one label; other names stay as they are; numbers sort as numbers. Also `ssiw corpus check`'s way
    of naming the missing parts of a release."""
    numbered: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    out = []
    for name, count in names:
        m = _NUMBERED.match(name)
        if m:
            numbered[m["prefix"]].append((int(m["number"]), name, count))
        else:
            out.append((name, count))
    for entries in numbered.values():
        entries.sort()
        run = [entries[0]]
        for entry in entries[1:]:
            if entry[0] == run[-1][0] + 1:
                run.append(entry)
                continue
            out.append(_label(run))
            run = [entry]
        out.append(_label(run))
    return sorted(out, key=lambda item: _natural(item[0]))


def _natural(label: str) -> list:
    """Sort key that puts patch9 before patch30..patch50."""
    return [int(piece) if n % 2 else piece for n, piece in enumerate(_DIGIT_RUNS.split(label))]


def _label(run: list[tuple[int, str, int]]) -> tuple[str, int]:
    name = run[0][1] if len(run) == 1 else f"{run[0][1]}..{run[-1][1]}"
    return name, sum(count for _, _, count in run)


def absent_folders(root: str, missing: Iterable[str]) -> list[tuple[str, int]]:
    """('images/v2/patch11..patch50', 1400000): the folders (relative to `root`, numbered runs collapsed)
    holding `missing` files that do not exist at all, with how many of the files each held; [] when
    every such folder is there."""
    root = os.path.normpath(str(root))
    per_folder = Counter(os.path.dirname(p) for p in missing)
    known: dict[str, bool] = {}
    absent: Counter = Counter()
    for folder, count in per_folder.items():
        if not _isdir(folder, known):
            absent[_topmost_absent(folder, root, known)] += count
    by_parent: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for folder, count in absent.items():
        by_parent[os.path.dirname(folder)].append((os.path.basename(folder), count))
    lines = []
    for parent, names in sorted(by_parent.items()):
        shown = os.path.relpath(parent, root) if parent.startswith(root) else parent
        for label, count in runs(names):
            where = label if shown == "." else f"{shown}/{label}"
            lines.append((where, count))
    if len(lines) > SHOWN:
        rest = lines[SHOWN - 1:]
        lines = [*lines[:SHOWN - 1], (f"{len(rest)} more folders", sum(n for _, n in rest))]
    return lines


def describe(where: str, count: int) -> str:
    return f"{where}: not found, {count:,} files"
