"""`ssiw corpus check` (and, beside it, `ssiw corpus build`). Heavy imports stay inside the functions."""

from __future__ import annotations

import json

import typer

from pipeline.corpus import build_cli

app = typer.Typer(help="The merged training corpus as one recipe (taxonomies/corpora/): check the downloads "
                       "against the releases, build the shards.", no_args_is_help=True)

TABLE_WIDTH = 100  # the table never grows wider; rich folds long names inside it


@app.command("check")
def check(
    recipe: str = typer.Argument(..., help=build_cli.RECIPE_HELP),
    data_root: str | None = typer.Option(None, "--data-root", help="folder holding every dataset's folder "
                                         "[default: the recipe's data_root]"),
    as_json: bool = typer.Option(False, "--json", help="print the findings as JSON instead of a table"),
) -> None:
    """Compare what is on disk with each release's official counts, without converting anything.

    One table (images found and expected, index file, missing release parts, status), then one line per
    problem. Exits 1 when a split has no images or fewer than the release, or its index or a part is missing.
    """
    from pipeline.corpus.check import check_recipe, has_problems
    from pipeline.corpus.recipe import find_recipe, load_recipe

    path = find_recipe(recipe)
    loaded = load_recipe(path).with_overrides(data_root=data_root)
    reports = _with_spinner(lambda progress: check_recipe(loaded, str(path), progress))
    if as_json:
        typer.echo(json.dumps({"recipe": str(path), "splits": [r.to_json() for r in reports],
                               "ok": not has_problems(reports)}, indent=2))
    else:
        _print_table(reports, str(path))
    if has_problems(reports):
        raise typer.Exit(1)


def _with_spinner(run):
    """Run the count with a spinner naming the split and the files counted so far (on stderr, gone after)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("reading the recipe")

        def progress(what: str, files: int) -> None:
            bar.update(task, description=f"counting {what}: {files:,} files")

        return run(progress)


def _print_table(reports, title: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from pipeline.corpus.check import MISSING, MORE, OK, PARTIAL, problem_lines

    colour = {OK: "green", MORE: "cyan", PARTIAL: "yellow", MISSING: "red"}
    console = Console(width=min(Console().width, TABLE_WIDTH))
    table = Table(title=f"corpus check: {title}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("dataset", overflow="fold")
    table.add_column("split", overflow="fold")
    table.add_column("found", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("index")
    table.add_column("missing parts", overflow="fold", min_width=13)
    table.add_column("status")
    for r in reports:
        expected = "-" if r.expected is None else f"{r.expected:,}"
        if r.cap:
            expected += f"\n{r.cap}"
        index = "-" if r.index_present is None or not r.root_exists else "ok" if r.index_present else "[red]missing[/]"
        missing = ", ".join(r.missing_parts) if r.missing_parts else ("none" if r.parts and r.root_exists else "-")
        table.add_row(r.dataset, r.split, f"{r.found:,}" if r.root_exists else "-", expected, index, missing,
                      f"[{colour[r.status]}]{r.status}[/]")
    console.print(table)
    # Plain lines, never wrapped: each names what to fetch, and stays greppable.
    for line in problem_lines(reports):
        typer.echo(f"problem: {line}")
    for line in dict.fromkeys(note for r in reports for note in r.notes):
        typer.echo(f"note: {line}")
    if not problem_lines(reports):
        typer.echo(f"all {len(reports)} splits complete")


app.command("build")(build_cli.build)
