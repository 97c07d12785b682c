"""The raw values a conversion met that its taxonomy lacks, tallied from the quarantine reports.

One unknown MID quarantines every image that has it; a wrong class list therefore shows up as one
line per value ("/m/09j2d: 120,345 samples") instead of a quarantine file nobody reads through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UnknownValue:
    dataset: str
    split: str
    value: object  # as the annotation has it: a MID, a category id, a label value, a colour
    samples: int  # quarantined samples that have it
    example: str  # one file that has it


def tally(quarantine: Path, dataset: str, split: str) -> list[UnknownValue]:
    """Unknown values of one split's quarantine report (JSONL with an optional `unknown` list), the
    most frequent first."""
    counts: dict[str, list] = {}
    try:
        f = open(quarantine)  # noqa: SIM115 -- closed by the `with f` below
    except FileNotFoundError:
        return []
    with f:  # line by line: a wrong class list can quarantine millions of samples
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            for value in entry.get("unknown") or ():
                tag = json.dumps(value, sort_keys=True)
                hit = counts.setdefault(tag, [value, 0, entry.get("file", "")])
                hit[1] += 1
    rows = [UnknownValue(dataset, split, value, n, example) for value, n, example in counts.values()]
    return sorted(rows, key=lambda r: (-r.samples, str(r.value)))


def render(rows: list[UnknownValue], limit: int = 50):
    """A rich Table: dataset/split, value, samples affected, one example file."""
    from rich.table import Table

    table = Table(title="raw values not in the taxonomy (each quarantined the samples that have it)")
    for col in ("dataset/split", "value", "samples", "example file"):
        table.add_column(col, justify="right" if col == "samples" else "left", overflow="fold")
    for r in rows[:limit]:
        table.add_row(f"{r.dataset}/{r.split}", str(r.value), f"{r.samples:,}", r.example)
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more values; see the quarantine reports"
    return table
