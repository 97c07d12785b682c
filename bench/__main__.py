"""Run every `bench/bench_*.py` module's `run() -> list[dict]` and print each as a table.

`python -m bench` runs them all; `python -m bench convert` only bench_convert.py. A module that
fails is reported and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path


def modules(only: list[str]) -> list[str]:
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if only:
        names = [n for n in names if n.removeprefix("bench_") in only or n in only]
    return names


def table(title: str, rows: list[dict]):
    from rich.table import Table

    columns = list(dict.fromkeys(k for row in rows for k in row))
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) else "left")
    for row in rows:
        t.add_row(*[_fmt(row.get(c, "")) for c in columns])
    return t


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def main(argv: list[str]) -> int:
    from rich.console import Console

    console = Console(width=max(Console().width, 160))
    failed = 0
    for name in modules(argv):
        start = time.perf_counter()
        try:
            rows = importlib.import_module(f"bench.{name}").run()
        except Exception:  # noqa: BLE001 -- one broken benchmark must not hide the others; its traceback is printed
            failed += 1
            console.print(f"[red]{name} failed[/red]\n{traceback.format_exc()}")
            continue
        console.print(table(f"{name} ({time.perf_counter() - start:.0f} s)", rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
