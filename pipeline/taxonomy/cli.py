"""`ssiw taxonomy ...`: list, show, validate and inspect the shipped (or any) taxonomy folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from pipeline.paths import default_taxonomy_dir
from pipeline.taxonomy.load import load_taxonomy_set, validate_folder

app = typer.Typer(help="List, show and validate dataset taxonomies and the label registry.", no_args_is_help=True)
console = Console()

TaxonomyDir = typer.Option(
    None, "--taxonomies", "-t", help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)"
)


def _load(folder: Path | None):
    return load_taxonomy_set(folder or default_taxonomy_dir())


@app.command("list")
def list_datasets(taxonomies: list[Path] | None = TaxonomyDir) -> None:
    """A table of every dataset: format, supervision, role and class count."""
    taxset = _load(taxonomies)
    # No vertical rules: the table fits 80 columns with every name whole.
    table = Table(title="taxonomies in " + ", ".join(map(str, taxset.folders)), box=box.SIMPLE_HEAD,
                  padding=(0, 1), collapse_padding=True, pad_edge=False)
    for col in ("dataset", "format", "supervision", "role"):
        table.add_column(col, no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("version", overflow="fold", min_width=7)
    for name, tax in sorted(taxset.datasets.items(), key=lambda kv: (kv[1].role.value != "train", kv[0])):
        table.add_row(name, tax.format, tax.supervision.value, tax.role.value, str(tax.num_classes), tax.version)
    console.print(table)
    console.print(f"{len(taxset.datasets)} datasets, {len(taxset.registry.labels)} labels in the registry")


@app.command("show")
def show(name: str, taxonomies: list[Path] | None = TaxonomyDir) -> None:
    """Every class of one dataset: index, raw ids, name, registry label and its description."""
    taxset = _load(taxonomies)
    tax = taxset.dataset(name)
    console.print(f"[bold]{tax.name}[/bold] {tax.version}  format={tax.format}  supervision={tax.supervision.value}")
    console.print(f"homepage: {tax.homepage}")
    for split, spec in tax.splits.items():
        console.print(f"split {split}: images={spec.images} annotations={spec.annotations} index={spec.index}")
    console.print(f"ignored raw values: {tax.ignore_values}  label dtype: {tax.label_dtype} ignore={tax.ignore_index}")
    table = Table()
    for col in ("index", "raw ids", "name", "label", "description"):
        table.add_column(col, overflow="fold")
    for index, entry in enumerate(tax.classes):
        label = taxset.registry.labels[entry.label]
        desc = entry.description or label.description
        table.add_row(str(index), ", ".join(map(str, entry.all_raw_ids)), entry.name, entry.label, desc)
    console.print(table)


@app.command("validate")
def validate(
    paths: list[Path] = typer.Argument(None, help="dataset YAML files (default: every file in the folder)"),
    taxonomies: list[Path] | None = TaxonomyDir,
) -> None:
    """Check the registry and dataset files; print every problem with its file and place."""
    # The files given are checked in the set they belong to: the shipped one with their folder over it.
    folders = taxonomies or ([paths[0].parent] if paths else [])
    taxset, problems = validate_folder(folders, only=list(paths) if paths else None)
    if problems:
        for p in problems:
            console.print(f"[red]✗[/red] {p}", highlight=False, soft_wrap=True)
        console.print(f"[red]{len(problems)} problem(s)[/red]")
        raise typer.Exit(1)
    assert taxset is not None
    for name, path in sorted(taxset.files.items()):
        console.print(f"[green]✓[/green] {path} ({taxset.datasets[name].num_classes} classes)", highlight=False, soft_wrap=True)
    console.print(f"[green]all {len(taxset.files)} file(s) valid[/green], registry has {len(taxset.registry.labels)} labels")


@app.command("formats")
def formats(name: str | None = typer.Argument(None, help="one format (default: every format)")) -> None:
    """Every annotation format a taxonomy YAML may name: what it reads, its format_options with their
    defaults, and a minimal example YAML (valid as it is; copy it to start a new dataset)."""
    import yaml
    from rich.markup import escape

    from pipeline.errors import UnknownName
    from pipeline.taxonomy.formats import FORMAT_INFO, OPTION_INFO, example_yaml

    if name is not None and name not in FORMAT_INFO:
        raise UnknownName(f"no format {name!r}; known: {', '.join(sorted(FORMAT_INFO))}")
    for info in [FORMAT_INFO[name]] if name else FORMAT_INFO.values():
        console.print(f"[bold]{info.name}[/bold] (format version {info.version}): {info.about}", highlight=False)
        console.print(f"supervision: {', '.join(sorted(info.supervision))}", highlight=False)
        if info.options:
            table = Table(show_header=True, box=None, pad_edge=False)
            for col in ("format_options", "default", "meaning"):
                table.add_column(col, overflow="fold")
            for key in sorted(info.options):
                option = OPTION_INFO[key]
                default = "-" if option.default is None else repr(option.default)
                choices = f" ({' | '.join(option.choices)})" if option.choices else ""
                table.add_row(key, default, escape(option.about + choices))
            console.print(table)
        examples = {"": example_yaml(info.name)}
        if info.name == "png_folder":
            examples = {" (mode index)": examples[""], " (mode color)": example_yaml(info.name, colour=True)}
        for title, doc in examples.items():
            console.print(f"minimal example{title}:", highlight=False)
            console.print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None).rstrip(), highlight=False,
                          markup=False)
        console.print()


@app.command("labels")
def labels(
    taxonomies: list[Path] | None = TaxonomyDir,
    unused: bool = typer.Option(False, help="show only labels no dataset uses"),
) -> None:
    """The label registry: each label's group, Wikipedia title and how many datasets use it."""
    taxset = _load(taxonomies)
    usage = taxset.label_usage()
    table = Table(title="label registry")
    for col in ("label", "name", "group", "wikipedia", "datasets"):
        table.add_column(col, overflow="fold")
    for key, label in sorted(taxset.registry.labels.items(), key=lambda kv: (kv[1].group.value, kv[0])):
        users = usage.get(key, [])
        if unused and users:
            continue
        table.add_row(key, label.name, label.group.value, label.wikipedia, f"{len(users)}")
    console.print(table)
