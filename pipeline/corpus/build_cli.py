"""`ssiw corpus build`. Heavy imports stay inside the function."""

from __future__ import annotations

from pathlib import Path

import typer

RECIPE_HELP = "recipe YAML, or the name of a shipped recipe (taxonomies/corpora/, e.g. ssiw-paper)"


def build(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    data_root: str | None = typer.Option(
        None, "--data-root", help="folder holding every dataset's root folder (overrides the recipe's data_root)"),
    out: str | None = typer.Option(
        None, "--out", help="shard folder or s3://bucket/prefix; corpus.json and corpus.html go there too "
                            "(overrides the recipe's out)"),
    cache: str | None = typer.Option(
        None, "--cache", help="description cache and embedding tables (overrides the recipe's cache)"),
    taxonomies: list[Path] | None = typer.Option(
        None, "--taxonomies", help="taxonomy folder layered over the shipped set, repeatable; later ones win "
                                   "(replaces the recipe's taxonomies list)"),
    no_ray: bool = typer.Option(False, "--no-ray", help="convert in this process instead of as Ray tasks"),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else a private Ray on 127.0.0.1)"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="parallel shard tasks (default: every CPU of the machine or cluster)"),
    task_timeout: float | None = typer.Option(
        None, "--task-timeout", min=1,
        help="Ray: seconds a shard task may run before it is cancelled and run on another node "
             "(default: 5x the median finished shard, at least 120 s)"),
    preview_samples: int = typer.Option(8, "--preview-samples", min=1, help="samples on each dataset's preview page"),
) -> None:
    """Describe, embed and convert every dataset of a recipe, then write corpus.json (what the trainer reads) and corpus.html (per-dataset tables, class histograms, links to previews) beside the shards.

    Safe to kill and re-run: finished shards and tables are kept and only what changed is redone (an edited dataset entry redoes that dataset's shards alone). One progress bar covers the whole corpus."""
    from rich.console import Console

    from pipeline.convert.cli import report_results
    from pipeline.corpus.build import BuildSettings, build_corpus
    from pipeline.corpus.recipe import find_recipe, load_recipe

    console = Console()
    recipe = find_recipe(recipe)
    spec = load_recipe(recipe).with_overrides(
        data_root=data_root, out=out, cache=cache,
        taxonomies=[str(t) for t in taxonomies] if taxonomies else None)
    settings = BuildSettings(use_ray=not no_ray, ray_address=ray_address, workers=workers,
                             task_timeout=task_timeout, preview_samples=preview_samples)
    outcome = build_corpus(spec, recipe, settings, say=lambda line: console.print(line, highlight=False, soft_wrap=True))
    report_results(console, outcome.results, outcome.summary.shards, title=f"corpus {spec.name} in {outcome.summary.shards}")
    for mode, written in outcome.embedded.items():
        console.print(f"embedding table ({mode}): {'written' if written else 'up to date'}: {outcome.summary.tables[mode]}",
                      highlight=False, soft_wrap=True)
    console.print(f"corpus.json: {outcome.summary_file}\nreport: {outcome.report_file}", highlight=False, soft_wrap=True)
