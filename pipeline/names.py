"""The one check for names that become paths: a dataset or split name, a key, a relative path
from a taxonomy or an index. Data is not code and not a path: nothing a taxonomy or an index says may
make the converter read or write outside the folder it was given (`--root`, `--out`).

Two kinds of check, both here so every caller applies the same rule:
- `path_name`: one path component (a split name, a dataset name): letters, digits, '.', '-' and
  '_', not starting with '.' (so never '..', never a hidden file, never a separator).
- `relative_path` / `inside`: a path relative to a root (a taxonomy's `images`/`index` entry, an
  index's `file_name`): no absolute path, no '..' part, so it stays under the root.

Validation (`ssiw taxonomy validate`) calls them, and so does the code that builds each path, so a
taxonomy object made some other way is caught too.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from pipeline.errors import BadInput

NAME_RULE = "letters, digits, '.', '-' and '_', not starting with '.'"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def name_problem(name: object) -> str | None:
    """Why `name` cannot be one path component, or None when it can."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"{name!r} may hold only {NAME_RULE} (it becomes a file or folder name)"
    return None


def path_name(name: str, what: str) -> str:
    """`name` unchanged when it is safe as one path component; else BadInput naming `what`."""
    problem = name_problem(name)
    if problem:
        raise BadInput(f"{what} {problem}")
    return name


def relative_problem(path: object) -> str | None:
    """Why `path` is not a plain path relative to a root (absolute, or with a '..' part), or None."""
    if not isinstance(path, str) or not path:
        return f"{path!r} is not a path"
    if "\0" in path:
        return f"{path!r} holds a NUL byte"
    # Windows forms too: a drive ('C:x') or a backslash '..' would escape on some filesystem.
    for pure in (PurePosixPath(path), PureWindowsPath(path)):
        if pure.is_absolute() or pure.anchor:
            return f"{path!r} is absolute (it must be relative to the root)"
        if ".." in pure.parts:
            return f"{path!r} has a '..' part (it must stay under the root)"
    return None


def relative_path(path: str, what: str) -> str:
    """`path` unchanged when it is relative and has no '..' part; else BadInput naming `what`."""
    problem = relative_problem(path)
    if problem:
        raise BadInput(f"{what} {problem}")
    return path


def inside(root: str | Path, path: str) -> Path | None:
    """root/path when `path` stays under `root` (relative, no '..'); None when it would escape."""
    if relative_problem(path) is not None:
        return None
    return Path(root) / path
