"""The `ssiw` command. Each stage owns its subcommands in its own module; this file only wires them
and turns a user-facing error (`pipeline.errors.SsiwError`) into one line and exit status 1.

Subcommand modules import heavy libraries (torch, ray, pyarrow) inside their functions so that
`ssiw --help` and `ssiw taxonomy ...` stay fast.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from pipeline.convert import cli as convert_cli
from pipeline.corpus import cli as corpus_cli
from pipeline.describe import cli as describe_cli
from pipeline.embed import cli as embed_cli
from pipeline.errors import SsiwError
from pipeline.label_audit import cli as label_audit_cli
from pipeline.shards import cli as shards_cli
from pipeline.taxonomy import cli as taxonomy_cli
from trainer import cli as trainer_cli


class SsiwGroup(TyperGroup):
    """Every subcommand runs inside this `invoke`: the one handler of user-facing errors. Anything
    else (a bug) keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SsiwError as e:
            typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from e


app = typer.Typer(
    cls=SsiwGroup,
    name="ssiw",
    help=(
        "Semantic segmentation from sentences: every class of every dataset becomes the embedding of a "
        "sentence describing it, so datasets with different taxonomies merge into one training corpus."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(taxonomy_cli.app, name="taxonomy")
app.command("describe")(describe_cli.describe)
app.command("embed")(embed_cli.embed)
app.add_typer(label_audit_cli.app, name="labels")
app.command("convert")(convert_cli.convert)
app.add_typer(shards_cli.shards_app, name="shards")
app.add_typer(corpus_cli.app, name="corpus")
app.command("train")(trainer_cli.train)
app.command("eval")(trainer_cli.evaluate)
app.command("eval-tables")(trainer_cli.eval_tables)
app.command("segment")(trainer_cli.segment)
app.command("import-ssiw")(trainer_cli.import_ssiw)
app.command("pseudo-label")(trainer_cli.pseudo_label)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
