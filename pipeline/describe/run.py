"""The describe stage: fetch what the cache lacks (Ray tasks or a thread pool), then rewrite the cache.

Every registry label ends with a cache row: its Wikipedia sentence when one was fetched for its
current title, else the registry's own description (source "registry"). A transient failure keeps
an earlier Wikipedia row; a missing or disambiguation page replaces it, since the title is wrong.
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.describe.cache import CachedDescription, cache_path, read_cache, write_cache
from pipeline.describe.wiki import ERROR, OK, FetchConfig, FetchResult, default_user_agent, fetch_batch
from pipeline.errors import SsiwError
from pipeline.taxonomy.load import TaxonomySet

CHUNK = 8  # labels per task: enough to reuse a connection, small enough to spread the work


@dataclass
class DescribeReport:
    cache_file: Path
    fetched: list[FetchResult] = field(default_factory=list)
    sources: Counter = field(default_factory=Counter)  # source -> labels, over the registry

    @property
    def problems(self) -> list[FetchResult]:
        return [r for r in self.fetched if r.status != OK]


def _chunks(items: list[Any], workers: int) -> list[list[Any]]:
    size = max(1, min(CHUNK, math.ceil(len(items) / max(1, workers))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _fetch_with_ray(chunks: list[list[tuple[str, str]]], cfg: FetchConfig, workers: int) -> list[FetchResult]:
    import ray

    from pipeline.ray_session import start_or_join

    start_or_join(quiet=True)  # the requested cluster, else a private one on 127.0.0.1
    # Network-bound: the task takes no CPU slot, and we cap requests in flight ourselves.
    task = ray.remote(num_cpus=0)(fetch_batch)
    results: list[FetchResult] = []
    pending: list[Any] = []
    queue = list(chunks)
    while queue or pending:
        while queue and len(pending) < workers:
            pending.append(task.remote(queue.pop(0), cfg))
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results.extend(ray.get(ref))
    return results


def _fetch_in_process(
    chunks: list[list[tuple[str, str]]], cfg: FetchConfig, workers: int, transport: Any
) -> list[FetchResult]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        batches = pool.map(lambda chunk: fetch_batch(chunk, cfg, transport), chunks)
        return [r for batch in batches for r in batch]


def fetch_all(
    items: list[tuple[str, str]],
    cfg: FetchConfig,
    *,
    use_ray: bool,
    workers: int,
    transport: Any = None,
) -> list[FetchResult]:
    """Fetch (label, title) pairs with at most `workers` concurrent clients. A transport (an httpx
    transport, for tests) only works in-process: it cannot travel to Ray workers."""
    if not items:
        return []
    chunks = _chunks(items, workers)
    if use_ray:
        if transport is not None:
            raise ValueError("a custom transport works only with use_ray=False")
        return _fetch_with_ray(chunks, cfg, workers)
    return _fetch_in_process(chunks, cfg, workers, transport)


class WikipediaUnreachable(SsiwError):
    """The first request could not connect at all: stop rather than retry every label."""


def _probe(todo: list[tuple[str, str]], cfg: FetchConfig, transport: Any) -> list[FetchResult]:
    """Fetch the first label alone; a machine without network fails here in seconds, not per label."""
    first = fetch_batch(todo[:1], cfg, transport)
    if first[0].status == ERROR and first[0].detail.startswith("connection failed"):
        raise WikipediaUnreachable(
            f"cannot reach Wikipedia ({first[0].detail} for {first[0].title!r}); check the network or a proxy, "
            "or run `ssiw describe --offline` to use the registry's own descriptions"
        )
    return first


def describe_labels(
    taxset: TaxonomySet,
    cache_dir: Path,
    *,
    offline: bool = False,
    refresh: bool = False,
    use_ray: bool = True,
    workers: int = 4,
    fetch_config: FetchConfig | None = None,
    transport: Any = None,
) -> DescribeReport:
    """Bring the description cache up to date for every registry label and write it."""
    path = cache_path(cache_dir)
    cache = read_cache(path)
    labels = taxset.registry.labels

    def current(key: str) -> bool:
        row = cache.get(key)
        return row is not None and row.source == "wikipedia" and row.title == labels[key].wikipedia

    todo = [] if offline else [(k, labels[k].wikipedia) for k in sorted(labels) if refresh or not current(k)]
    cfg = fetch_config or FetchConfig(user_agent=default_user_agent())
    results = _probe(todo, cfg, transport) if todo else []
    results += fetch_all(todo[1:], cfg, use_ray=use_ray, workers=workers, transport=transport)

    rows = dict(cache)
    for r in results:
        if r.status == OK:
            rows[r.label] = CachedDescription.now(r.label, r.title, r.text, "wikipedia")
        elif r.status != ERROR or not current(r.label):
            rows.pop(r.label, None)  # wrong title (or nothing good cached): fall back below
    report = DescribeReport(cache_file=path, fetched=sorted(results, key=lambda r: r.label))
    for key in sorted(labels):
        row, label = rows.get(key), labels[key]
        fresh_wiki = row is not None and row.source == "wikipedia" and row.title == label.wikipedia
        fresh_registry = row is not None and row.source == "registry" and row.text == label.description
        if not (fresh_wiki or fresh_registry):
            rows[key] = CachedDescription.now(key, labels[key].wikipedia, labels[key].description, "registry")
        report.sources[rows[key].source] += 1
    write_cache(path, rows)
    return report
