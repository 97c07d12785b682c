"""Shard tasks on a Ray cluster, surviving what clusters do: a node that crashes, and one that hangs.

The driver places every task on a node itself (one task per CPU of each live node, pinned there), so it
knows where each shard runs even when the node stops answering, and a task starts about when it is
submitted. A shard that makes no progress past its deadline
(`--task-timeout`, else derived from the finished shards' times) is cancelled, its node gets no more
tasks, and the shard is submitted again on another node; a task lost with its node (crash) is submitted
again the same way. After MAX_ATTEMPTS a shard fails the job naming the shard and the nodes it stalled
on, as does running out of nodes: the job ends or fails, it never hangs.

A task killed with its node, or cancelled, cannot clean up after itself: every task first removes the
staging files of dead processes on its node (pipeline.safe_write.remove_orphaned_staging), and the run
sends one such sweep to every node at its end.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from pipeline import storage
from pipeline.convert.plan import ShardPlan
from pipeline.convert.shard import ShardFailed, ShardOptions, convert_shard
from pipeline.safe_write import remove_orphaned_staging

MAX_ATTEMPTS = 3  # per shard: the first run and two more on other nodes
POLL_S = 1.0  # how often deadlines are checked while nothing finishes


class ShardStalled(ShardFailed):
    """A shard made no progress past its deadline MAX_ATTEMPTS times (or its node died each time)."""


@dataclass
class Deadline:
    """How long a shard task may run. Fixed (`--task-timeout`), or derived: `factor` times the median
    time of the shards finished so far, never under `floor_s`, once `min_finished` shards have finished
    (before that no task is cancelled: nothing says yet how long a shard takes)."""

    fixed_s: float | None = None
    factor: float = 5.0
    floor_s: float = 120.0
    min_finished: int = 3
    finished_s: list[float] = field(default_factory=list)

    def seconds(self) -> float | None:
        if self.fixed_s:
            return self.fixed_s
        if len(self.finished_s) < self.min_finished:
            return None
        return max(self.floor_s, self.factor * statistics.median(self.finished_s))


@dataclass
class Attempt:
    plan: ShardPlan
    number: int  # 1 for the first run of this shard
    submitted: float
    node: str = ""  # Ray node id the task is pinned to
    where: str = ""  # "node 1a2b3c4d (10.0.0.5)", for messages


def shard_task(tax, reader, plan: ShardPlan, out_dir: storage.Location, options: ShardOptions) -> dict:
    """The Ray task."""
    remove_orphaned_staging()  # left on this node by tasks killed or cancelled earlier
    return convert_shard(tax, reader, plan, out_dir, options)


def sweep_task() -> int:
    return len(remove_orphaned_staging())


class ShardScheduler:
    """Keeps up to `limit` shard tasks in flight, one per CPU of each trusted node; see the module docstring."""

    def __init__(self, tax, reader, out_dir, options: ShardOptions, limit: int | None, deadline: Deadline, env: dict):
        import ray

        self.ray = ray
        self.task = ray.remote(num_cpus=1, max_retries=0, **env)(shard_task)
        self.args = (ray.put(tax), ray.put(reader), out_dir, options)
        self.dataset = tax.name
        self.limit = limit
        self.deadline = deadline
        self.env = env
        self.running: dict = {}  # ObjectRef -> Attempt
        self.history: dict[str, list[str]] = {}  # shard name -> what happened to each attempt
        self.suspects: dict[str, str] = {}  # node id -> where: nodes a shard stalled on get no more tasks

    def run(self, todo: list[ShardPlan], bar) -> None:
        queue = deque(Attempt(p, 1, 0.0) for p in todo)
        try:
            while queue or self.running:
                self._fill(queue)
                ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    retry = self._collect(ref, bar)
                    if retry:
                        queue.appendleft(retry)
                queue.extendleft(self._expired())
        finally:
            self._cancel(list(self.running))
            self.running.clear()

    def _cancel(self, refs: list) -> None:
        """Cancel the tasks not finished yet. Never a finished one: in Ray 2.60 a cancel that crosses the
        task's completion can abort the driver ("Tried to complete task that was not pending")."""
        if not refs:
            return
        _, unfinished = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in unfinished:
            self.ray.cancel(ref, force=True)

    def _nodes(self) -> dict[str, tuple[int, str]]:
        """Live, trusted nodes with CPUs: node id -> (CPUs, "node 1a2b3c4d (address)")."""
        found = {}
        for n in self.ray.nodes():
            cpus = int(n.get("Resources", {}).get("CPU", 0))
            if n.get("Alive") and cpus and n["NodeID"] not in self.suspects:
                found[n["NodeID"]] = cpus, f"node {n['NodeID'][:8]} ({n.get('NodeManagerAddress', '?')})"
        return found

    def _fill(self, queue: deque) -> None:
        """Submit queued shards to the nodes with free CPUs, the least busy first."""
        if not queue or (self.limit and len(self.running) >= self.limit):
            return
        nodes = self._nodes()
        if not nodes and not self.running:
            what = "; ".join(f"{self.dataset}/{name}: {', '.join(h)}" for name, h in self.history.items())
            raise ShardStalled(
                f"{self.dataset}: no node left to run {len(queue)} shard(s) on ({what or 'no live node with CPUs'}). "
                "Finished shards are kept: fix or replace the nodes named and run the same command again."
            )
        busy = {node: 0 for node in nodes}
        for attempt in self.running.values():
            if attempt.node in busy:
                busy[attempt.node] += 1
        while queue and not (self.limit and len(self.running) >= self.limit):
            node = min(busy, key=lambda n: (busy[n] / nodes[n][0], n), default=None)
            if node is None or busy[node] >= nodes[node][0]:
                return
            busy[node] += 1
            self._submit(queue.popleft(), node, nodes[node][1])

    def _submit(self, attempt: Attempt, node: str, where: str) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # Pinned (soft=False): the driver knows where the shard runs, and a task whose node is gone
        # fails at once instead of waiting for it.
        task = self.task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        attempt.submitted, attempt.node, attempt.where = time.monotonic(), node, where
        tax_ref, reader_ref, out_dir, options = self.args
        self.running[task.remote(tax_ref, reader_ref, attempt.plan, out_dir, options)] = attempt

    def _collect(self, ref, bar) -> Attempt | None:
        """Take a finished task's result or failure. Returns the attempt to submit again when the task
        was lost with its node or worker."""
        exceptions = self.ray.exceptions
        attempt = self.running.pop(ref)
        try:
            self.ray.get(ref)
        except exceptions.RayTaskError as e:  # the task raised: surface the original
            raise e.cause or e from None
        except exceptions.RayError as e:  # node or worker lost (crash, kill)
            return self._again(attempt, f"lost on {attempt.where} ({type(e).__name__})")
        self.deadline.finished_s.append(time.monotonic() - attempt.submitted)
        bar.update(attempt.plan.count)
        return None

    def _expired(self) -> list[Attempt]:
        """Cancel the tasks past their deadline, distrust their nodes, return the shards' next attempts."""
        limit = self.deadline.seconds()
        if limit is None:
            return []
        now = time.monotonic()
        again = []
        for ref, attempt in list(self.running.items()):
            waited = now - attempt.submitted
            if waited <= limit:
                continue
            self._cancel([ref])  # returns at once; a hung node never answers
            del self.running[ref]
            self.suspects[attempt.node] = attempt.where
            again.append(self._again(attempt, f"no progress in {waited:.0f} s on {attempt.where}"))
        return again

    def _again(self, attempt: Attempt, what: str) -> Attempt:
        history = self.history.setdefault(attempt.plan.name, [])
        history.append(f"attempt {attempt.number}: {what}")
        if attempt.number >= MAX_ATTEMPTS:
            raise ShardStalled(
                f"shard {self.dataset}/{attempt.plan.name} did not finish in {MAX_ATTEMPTS} attempts: "
                + "; ".join(history)
                + ". Finished shards are kept: fix or remove the node(s) named and run the same command again."
            )
        return Attempt(attempt.plan, attempt.number + 1, 0.0)

    def sweep_nodes(self, seconds: float = 30.0) -> None:
        """Remove the staging files that killed or cancelled tasks left, on every trusted live node. A
        sweep still waiting after `seconds` (a busy node) is left to run; it is never cancelled."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        sweep = ray.remote(num_cpus=0, max_retries=0, **self.env)(sweep_task)
        refs = [sweep.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
                for node in self._nodes()]
        ray.wait(refs, num_returns=len(refs), timeout=seconds)
