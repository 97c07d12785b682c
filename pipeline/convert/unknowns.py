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
    pixels: int = 0  # its pixels in those samples, when the reader counted them (label maps)
    sample_pixels: int = 0  # all pixels of the samples whose values were counted
    split_samples: int = 0  # quarantined samples of the split with any unknown value (the total)

    @property
    def share(self) -> float | None:
        """The value's share of the pixels of the samples that have it; None when not counted."""
        return self.pixels / self.sample_pixels if self.sample_pixels else None


def tally(quarantine: Path, dataset: str, split: str) -> list[UnknownValue]:
    """Unknown values of one split's quarantine report (JSONL with an optional `unknown` list), the
    most frequent first."""
    counts: dict[str, list] = {}  # value tag -> [value, samples, example, pixels, sample pixels]
    affected = 0
    try:
        f = open(quarantine)  # noqa: SIM115 -- closed by the `with f` below
    except FileNotFoundError:
        return []
    with f:  # line by line: a wrong class list can quarantine millions of samples
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            values = entry.get("unknown") or ()
            affected += bool(values)
            pixels = entry.get("unknown_pixels") or [0] * len(values)
            for value, count in zip(values, pixels):
                tag = json.dumps(value, sort_keys=True)
                hit = counts.setdefault(tag, [value, 0, entry.get("file", ""), 0, 0])
                hit[1] += 1
                if entry.get("unknown_pixels") is not None:
                    hit[3] += count
                    hit[4] += entry.get("pixels", 0)
    rows = [UnknownValue(dataset, split, value, n, example, px, total, affected)
            for value, n, example, px, total in counts.values()]
    return sorted(rows, key=lambda r: (-r.samples, -r.pixels, str(r.value)))


def totals(rows: list[UnknownValue]) -> list[str]:
    """One line per split: how many values, in how many quarantined samples."""
    splits: dict[str, list[UnknownValue]] = {}
    for r in rows:
        splits.setdefault(f"{r.dataset}/{r.split}", []).append(r)
    return [f"{where}: {len(found)} value(s) not in the taxonomy, in {found[0].split_samples:,} quarantined sample(s)"
            for where, found in splits.items()]


def render(rows: list[UnknownValue], limit: int = 50):
    """A rich Table: dataset/split, value, samples affected, its share of their pixels, one example
    file; the caption gives the totals per split."""
    from rich import box
    from rich.table import Table

    # No vertical rules, so a value (a MID, a colour) stays whole at 80 columns; the file name folds.
    table = Table(title="raw values not in the taxonomy (each quarantined the samples that have it)",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False)
    for col in ("dataset/split", "value", "samples", "pixels", "example file"):
        table.add_column(col, justify="right" if col in ("samples", "pixels") else "left", overflow="fold",
                         ratio=3 if col == "example file" else None)
    for r in rows[:limit]:
        share = "-" if r.share is None else f"{100 * r.share:.1f}%"
        table.add_row(f"{r.dataset}/{r.split}", str(r.value), f"{r.samples:,}", share, r.example)
    caption = totals(rows)
    if len(rows) > limit:
        caption.append(f"{len(rows) - limit} more values; see the quarantine reports")
    table.caption = "\n".join(caption + ["pixels: the value's share of the pixels of the samples that have it"])
    return table
