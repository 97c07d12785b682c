"""`ssiw corpus`: a whole training corpus from one recipe. Heavy imports stay inside the commands."""

from __future__ import annotations

import typer

from pipeline.corpus import build_cli

app = typer.Typer(help="A whole training corpus from one recipe (taxonomies/corpora/).", no_args_is_help=True)
app.command("build")(build_cli.build)
