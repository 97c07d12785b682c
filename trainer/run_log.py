"""What a training run records besides checkpoints: losses.csv (one row per optimizer step, rank 0),
TensorBoard scalars every `log_every` steps (rank 0), skipped-rank<r>.jsonl (each rank's unreadable
samples) and the progress bar.

A resumed run continues from its checkpoint's step S, not from where the killed run stopped: every
log is first cut back to the steps up to S, so the steps after S are recorded once, by the resumed
run, and the logs equal an uninterrupted run's. Rows are flushed before each checkpoint is saved,
so every step a checkpoint covers is on disk when the checkpoint is.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from pipeline.safe_write import write_text_atomic

LOSS_FIELDS = ["step", "total", "hd", "ld", "wd", "tau", "lr", "samples_per_s", "skipped"]
SCALARS = ("total", "hd", "ld", "wd", "tau", "lr")


def _step_of(row: dict) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


def cut_losses_csv(path: Path, last_step: int) -> None:
    """Keep the header and the complete rows of steps 1..last_step (a row cut short by a kill, or
    one of a step past the checkpoint, goes)."""
    kept = []
    if path.exists() and last_step > 0:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = _step_of(row)
                complete = None not in row and all(row.get(k) is not None for k in LOSS_FIELDS)
                if step is not None and step <= last_step and complete:
                    kept.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LOSS_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(kept)
    write_text_atomic(path, out.getvalue())


def cut_jsonl(path: Path, last_step: int) -> None:
    """Keep the complete lines whose "step" is at most last_step."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= last_step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
    write_text_atomic(path, "".join(kept))


class RunLog:
    def __init__(self, run_dir: Path, rank: int, start_step: int, total_steps: int, log_every: int,
                 name: str = "run", progress: bool = True):
        self.run_dir, self.rank, self.log_every, self.total_steps = Path(run_dir), rank, log_every, total_steps
        self._skip_path = self.run_dir / f"skipped-rank{rank}.jsonl"
        self._skip_file = None  # opened at the first unreadable sample
        self._csv_file = self._csv = self._tb = self._bar = None
        cut_jsonl(self._skip_path, start_step)
        if rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cut_losses_csv(self.run_dir / "losses.csv", start_step)
        self._csv_file = open(self.run_dir / "losses.csv", "a", newline="")  # noqa: SIM115 -- appended to every step, closed by close()
        self._csv = csv.DictWriter(self._csv_file, fieldnames=LOSS_FIELDS)
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard drops the killed run's events past the checkpoint.
        self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc=name, unit="step", dynamic_ncols=True)

    def skipped(self, step: int, items: list[dict]) -> None:
        """Unreadable samples met while working towards `step`: on stderr and in this rank's log."""
        for item in items:
            line = json.dumps({"step": step, "rank": self.rank, **item})
            print(f"[ssiw] skipped unreadable sample: {line}", file=sys.stderr, flush=True)
            if self._skip_file is None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._skip_file = open(self._skip_path, "a")  # noqa: SIM115 -- kept open for the run, closed by close()
            self._skip_file.write(line + "\n")
            self._skip_file.flush()

    def step(self, row: dict, samples_read: int, samples_skipped: int) -> None:
        """One optimizer step's losses (rank 0 only records)."""
        if self.rank != 0:
            return
        step = int(row["step"])
        self._csv.writerow({k: row.get(k, "") for k in LOSS_FIELDS})
        if step % self.log_every == 0 or step == self.total_steps:
            self._csv_file.flush()
            for k in SCALARS:
                if k in row:
                    self._tb.add_scalar(f"train/{k}", row[k], step)
            self._tb.add_scalar("data/skipped_samples", samples_skipped, step)
            self._tb.add_scalar("data/skipped_fraction", samples_skipped / max(samples_read, 1), step)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{row['total']:.3f}", tau=f"{row['tau']:.3f}")

    def flush(self) -> None:
        """Before a checkpoint: every row it covers reaches the file first."""
        if self._csv_file is not None:
            self._csv_file.flush()
            self._tb.flush()

    def close(self) -> None:
        for handle in (self._bar, self._skip_file, self._csv_file, self._tb):
            if handle is not None:
                handle.close()
