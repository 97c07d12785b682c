"""What a training run records besides checkpoints: losses.csv (one row per optimizer step, rank 0),
TensorBoard scalars every `log_every` steps (rank 0), skipped-rank<r>.jsonl (each rank's unreadable
samples) and the progress bar.

A resumed run continues from its checkpoint's step S, not from where the killed run stopped: every
log is first cut back to the steps up to S, so the steps after S are recorded once, by the resumed
run, and the logs equal an uninterrupted run's. Rows are flushed before each checkpoint is saved,
so every step a checkpoint covers is on disk when the checkpoint is.

An object-store run folder (`out_dir: s3://...`) cannot be appended to, so each rank writes its logs
to a local spool folder in $TMPDIR (`LogSpool`) and uploads every file that changed since its last
upload whole, one PUT replacing the object: at a log step (`log_every`) once `log_upload_every_s`
seconds have passed since the last upload, before every checkpoint (rank 0), and when the run ends
or fails with an error. A resumed run first downloads the bucket's logs into its spool and cuts them back as above.
What a crash loses is bounded: the rows since the last upload (at most `log_upload_every_s` plus one
log interval), and those are steps past the newest checkpoint unless the crash came between an upload
and the next checkpoint, which a resumed run cuts anyway. A TensorBoard event file only grows, and
each run writes its own, so a resumed run's events sit beside the killed run's, as in a local run.
A crash leaves its spool folder (`ssiw-runlog-*`) in $TMPDIR.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pipeline import storage
from pipeline.safe_write import write_bytes_atomic, write_text_atomic

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


class LogSpool:
    """Where a rank writes its logs: a local run folder in place; for an object-store run folder, a
    local spool folder whose changed files `upload` sends whole (see the module's docstring)."""

    def __init__(self, run_dir: storage.Location, rank: int):
        self.remote = str(run_dir) if storage.is_remote(run_dir) else None
        self.folder = Path(tempfile.mkdtemp(prefix=f"ssiw-runlog-rank{rank}-")) if self.remote else Path(run_dir)
        self._uploaded: dict[str, tuple[int, int]] = {}  # name in the run folder -> (size, mtime) sent

    def fetch(self, name: str) -> None:
        """Copy the run folder's `name`, when there is one, into the spool (a resumed run goes on from it)."""
        if self.remote is None:
            return
        source = storage.join(self.remote, name)
        if storage.is_file(source):
            storage.download(source, self.folder / name)

    def upload(self) -> None:
        """Every spool file changed since it was last sent, as one whole object each."""
        if self.remote is None:
            return
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            name = path.relative_to(self.folder).as_posix()
            stat = path.stat()
            if self._uploaded.get(name) != (stat.st_size, stat.st_mtime_ns):
                write_bytes_atomic(storage.join(self.remote, name), path.read_bytes())
                self._uploaded[name] = (stat.st_size, stat.st_mtime_ns)

    def close(self) -> None:
        if self.remote is not None:
            self.upload()
            shutil.rmtree(self.folder, ignore_errors=True)


class RunLog:
    def __init__(self, run_dir: storage.Location, rank: int, start_step: int, total_steps: int, log_every: int,
                 name: str = "run", progress: bool = True, upload_every_s: float = 60.0):
        self.run_dir, self.rank, self.log_every, self.total_steps = run_dir, rank, log_every, total_steps
        self._spool = LogSpool(run_dir, rank)
        self._upload_every_s, self._uploaded_at = upload_every_s, time.monotonic()
        folder = self._spool.folder
        self._skip_path = folder / f"skipped-rank{rank}.jsonl"
        self._skip_file = None  # opened at the first unreadable sample
        self._csv_file = self._csv = self._tb = self._bar = None
        self._spool.fetch(self._skip_path.name)
        cut_jsonl(self._skip_path, start_step)
        if rank != 0:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._spool.fetch("losses.csv")
        cut_losses_csv(folder / "losses.csv", start_step)
        self._csv_file = open(folder / "losses.csv", "a", newline="")  # noqa: SIM115 -- appended to every step, closed by close()
        self._csv = csv.DictWriter(self._csv_file, fieldnames=LOSS_FIELDS)
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard drops the killed run's events past the checkpoint.
        self._tb = SummaryWriter(str(folder / "tb"), purge_step=start_step + 1 if start_step else None)
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc=name, unit="step", dynamic_ncols=True)

    def skipped(self, step: int, items: list[dict]) -> None:
        """Unreadable samples met while working towards `step`: on stderr and in this rank's log."""
        for item in items:
            line = json.dumps({"step": step, "rank": self.rank, **item})
            print(f"[ssiw] skipped unreadable sample: {line}", file=sys.stderr, flush=True)
            if self._skip_file is None:
                self._skip_path.parent.mkdir(parents=True, exist_ok=True)
                self._skip_file = open(self._skip_path, "a")  # noqa: SIM115 -- kept open for the run, closed by close()
            self._skip_file.write(line + "\n")
            self._skip_file.flush()

    def step(self, row: dict, samples_read: int, samples_skipped: int) -> None:
        """One optimizer step's losses (rank 0 only records); every rank uploads its spool at log steps."""
        step = int(row["step"])
        at_log_step = step % self.log_every == 0 or step == self.total_steps
        if self.rank == 0:
            self._record(row, step, at_log_step, samples_read, samples_skipped)
        if at_log_step and self._spool.remote and time.monotonic() - self._uploaded_at >= self._upload_every_s:
            self.flush()

    def _record(self, row: dict, step: int, at_log_step: bool, samples_read: int, samples_skipped: int) -> None:
        self._csv.writerow({k: row.get(k, "") for k in LOSS_FIELDS})
        if at_log_step:
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
        """Before a checkpoint: every row it covers reaches the file (and an object-store run folder) first."""
        if self._csv_file is not None:
            self._csv_file.flush()
            self._tb.flush()
        self._spool.upload()
        self._uploaded_at = time.monotonic()

    def close(self) -> None:
        for handle in (self._bar, self._skip_file, self._csv_file, self._tb):
            if handle is not None:
                handle.close()
        self._spool.close()
