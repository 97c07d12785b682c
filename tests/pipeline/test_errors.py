"""The error contract: user-facing problems are SsiwErrors naming the file or value, and `ssiw` turns
only those into `error: <message>` and exit status 1; a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import SsiwGroup, app
from pipeline.errors import BadInput, NotFound, SsiwError, UnknownName


def test_user_mistakes_raise_ssiw_errors_naming_what_is_wrong(tmp_path: Path, shipped_taxonomies):
    from pipeline.convert.plan import parse_size
    from pipeline.convert.readers import get_reader
    from pipeline.embed.table import load_table
    from trainer.config import load_config
    from trainer.model.checkpoint import RunCheckpoint

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed")
    cases = [
        (lambda: shipped_taxonomies.dataset("nope"), UnknownName, "no taxonomy named 'nope'"),
        (lambda: get_reader("tiff_stack"), UnknownName, "no reader for format 'tiff_stack'"),
        (lambda: parse_size("big"), BadInput, "cannot read shard size 'big'"),
        (lambda: load_config(tmp_path / "absent.yaml"), NotFound, f"{tmp_path / 'absent.yaml'}: config file not found"),
        (lambda: load_config(bad_yaml), BadInput, f"{bad_yaml}: not valid YAML"),
        (lambda: load_table(tmp_path / "t.parquet"), NotFound, f"{tmp_path / 't.parquet'}: no such embedding file"),
        (lambda: RunCheckpoint.load(tmp_path / "step-1.pt"), NotFound, f"{tmp_path / 'step-1.pt'}: checkpoint not found"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind) as err:
            call()
        assert isinstance(err.value, SsiwError)
        assert str(err.value).startswith(message)  # UnknownName is a KeyError, but not quoted like one


def test_the_built_in_bases_are_kept_for_existing_callers():
    from pipeline.convert.boxemb import BoxEmbeddingError
    from pipeline.convert.readers.base import BadSample
    from pipeline.convert.runner import ConvertError
    from pipeline.convert.shard import ShardFailed, StrictStop
    from pipeline.describe.run import WikipediaUnreachable
    from pipeline.embed.encoders import EncoderError
    from pipeline.shard_format import SampleError
    from pipeline.taxonomy.load import TaxonomyError

    for kind in (ConvertError, EncoderError, TaxonomyError, SampleError):
        assert issubclass(kind, SsiwError) and issubclass(kind, ValueError)
    for kind in (BoxEmbeddingError, BadSample, StrictStop, WikipediaUnreachable):
        assert issubclass(kind, SsiwError)
    assert not issubclass(ShardFailed, SsiwError)  # wraps bugs and full disks: never a one-line message
    assert issubclass(NotFound, FileNotFoundError) and issubclass(UnknownName, KeyError)
    assert str(StrictStop("a.png", "cannot decode")) == "--strict: bad sample a.png: cannot decode"


def _toy_app() -> typer.Typer:
    """The real handler (SsiwGroup) around two commands: a user mistake and a bug."""
    toy = typer.Typer(cls=SsiwGroup)

    @toy.command("mistake")
    def mistake() -> None:
        raise NotFound("runs/x/config.yaml: config file not found")

    @toy.command("bug")
    def bug() -> None:
        {}["missing"]  # a programming error, on purpose

    return toy


def test_only_ssiw_errors_become_one_line_and_exit_1():
    toy = _toy_app()
    result = CliRunner().invoke(toy, ["mistake"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output == "error: runs/x/config.yaml: config file not found\n"
    with pytest.raises(KeyError, match="missing"):  # a bug is not dressed up as a user error
        CliRunner().invoke(toy, ["bug"], catch_exceptions=False)


def test_every_command_shares_the_handler(tmp_path: Path):
    runner = CliRunner()
    cases = [
        (["taxonomy", "show", "nope"], "no taxonomy named 'nope'"),
        (["train", str(tmp_path / "absent.yaml")], f"{tmp_path / 'absent.yaml'}: config file not found"),
        (["shards", "stats", "--out", str(tmp_path)], f"no manifests under {tmp_path}"),
        (["eval", str(tmp_path), "--dataset", "a"], "give exactly one of --root or --shards"),
        (["labels", "audit", "--taxonomies", str(tmp_path / "nowhere")], "taxonomy folder not found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error: ") and message in result.output, (args, result.output)
