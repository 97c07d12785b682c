"""`ssiw train CONFIG --check`: everything a run would trip on, found in seconds without training.

Three kinds of finding: a problem (a wrong field: the check fails, naming it), something not built
yet (shards, the embedding table, downloaded weights: listed with the command that makes it, without
failing, so a config can be checked before the data is converted), and what was found (for the eye).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import NotFound, SsiwError
from trainer.config import PRETRAINED_BACKBONES, TrainConfig, load_config, pretrained_howto

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")


@dataclass
class CheckReport:
    config: Path
    problems: list[str] = field(default_factory=list)  # "field: what is wrong"
    missing: list[str] = field(default_factory=list)  # not built yet, and how to build it
    found: list[str] = field(default_factory=list)


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _taxonomies(cfg: TrainConfig, report: CheckReport):
    """The taxonomy set, and whether it is whole: a `taxonomies:` folder not made yet leaves the
    dataset names it would define unchecked rather than wrong."""
    from pipeline.taxonomy.load import load_taxonomy_set

    given = [] if cfg.taxonomies is None else [cfg.taxonomies] if isinstance(cfg.taxonomies, Path) else cfg.taxonomies
    absent = [f for f in given if not Path(f).is_dir()]
    for folder in absent:
        report.missing.append(f"taxonomies {folder}: not there yet (a folder of your dataset YAMLs)")
    try:
        return load_taxonomy_set([f for f in given if f not in absent]), not absent
    except SsiwError as e:
        report.problems.append(f"taxonomies: {e}")
        return None, False


def _table(cfg: TrainConfig, report: CheckReport):
    from pipeline.embed.table import load_table, lookup_path

    if cfg.table is None:
        report.problems.append("table: not given; `ssiw embed` writes one (cache/embeddings/<encoder>-<mode>.parquet)")
        return None
    if not (cfg.table.exists() and lookup_path(cfg.table).exists()):
        report.missing.append(f"table {cfg.table}: not built yet (`ssiw embed --encoder ENCODER --mode sentence`)")
        return None
    try:
        table = load_table(cfg.table)
    except SsiwError as e:
        report.problems.append(f"table: {e}")
        return None
    report.found.append(f"table {cfg.table}: {len(table.labels)} labels, {table.dim}-d, encoder {table.encoder}")
    return table


def _datasets(cfg: TrainConfig, taxset, whole: bool, table, report: CheckReport) -> list[int]:
    """Check each entry's name and split; returns the indices of the entries that are usable."""
    taxonomies = taxset.datasets if taxset is not None else {}
    in_table = set(table.datasets) if table is not None else set()
    usable = []
    for i, d in enumerate(cfg.datasets):
        if d.name not in taxonomies and d.name not in in_table and not whole:
            report.missing.append(f"datasets[{i}].name: {d.name!r} unchecked until its taxonomies folder is there")
            usable.append(i)
            continue
        if d.name not in taxonomies and d.name not in in_table:
            known = sorted(set(taxonomies) | in_table)
            report.problems.append(f"datasets[{i}].name: no taxonomy named {d.name!r}{_did_you_mean(d.name, known)}")
            continue
        tax = taxonomies.get(d.name)
        if tax is not None and d.split not in tax.splits:
            report.problems.append(f"datasets[{i}].split: {d.split!r} is not a split of {d.name} "
                                   f"(it has: {', '.join(tax.splits)}){_did_you_mean(d.split, list(tax.splits))}")
            continue
        if table is not None and d.name not in in_table:
            report.missing.append(f"table rows for {d.name}: not embedded yet (`ssiw embed` again, with its taxonomy)")
        usable.append(i)
    return usable


def _weights(cfg: TrainConfig, report: CheckReport) -> None:
    weights = cfg.backbone_weights
    if weights is None:
        if cfg.weights == "random" and cfg.model in PRETRAINED_BACKBONES:
            report.found.append(f"weights: random (the {cfg.model} backbone starts untrained)")
        return
    if cfg.model not in PRETRAINED_BACKBONES:
        report.problems.append(f"weights: the {cfg.model!r} model has no pretrained backbone; remove `weights:`")
    elif not weights.exists():
        report.missing.append(f"weights {weights}: not there yet; {pretrained_howto(cfg.model)}")
    elif weights.is_dir() and not (cfg.model == "segformer-b5" and (weights / "config.json").is_file()):
        report.problems.append(f"weights: {weights} is a folder; only segformer-b5 reads one, a transformers folder "
                               "with config.json; other models read a .pth or .safetensors file")
    elif weights.is_file() and weights.suffix not in WEIGHT_FILE_SUFFIXES:
        report.problems.append(f"weights: {weights} is not a {'/'.join(WEIGHT_FILE_SUFFIXES)} weights file")
    else:
        report.found.append(f"weights: {weights}")


def _init(cfg: TrainConfig, table, report: CheckReport) -> None:

    from trainer.model.checkpoint import RunCheckpoint

    if cfg.init is None:
        return
    try:
        ckpt = RunCheckpoint.load(cfg.init)
    except NotFound:  # a fine-tuning recipe names the run it starts from before that run is trained
        report.missing.append(f"init: {cfg.init}: not trained yet (train the run it names first)")
        return
    except SsiwError as e:
        report.problems.append(f"init: {e}")
        return
    theirs = ckpt.settings.model
    if theirs != cfg.model:
        report.problems.append(f"init: {cfg.init} holds a {theirs!r} network but `model:` is {cfg.model!r}")
    dim = ckpt.dim
    if table is not None and dim != table.dim:
        report.problems.append(f"init: {cfg.init} outputs {dim}-d embeddings but the table's are {table.dim}-d "
                               "(embed with the run's text encoder)")
    else:
        report.found.append(f"init: {cfg.init} ({theirs}, {dim}-d)")


def _held_out(cfg: TrainConfig, taxset, table, report: CheckReport) -> None:
    if taxset is None and table is None:
        return
    known = set(taxset.registry.labels if taxset is not None else ()) | set(table.labels if table is not None else ())
    for key in cfg.held_out_labels:
        if key not in known:
            report.problems.append(f"held_out_labels: {key!r} is no registry label{_did_you_mean(key, sorted(known))}")


def _shards(cfg: TrainConfig, usable: list[int], report: CheckReport) -> None:
    from pipeline.shards.read import find_shards

    for i in usable:
        d = cfg.datasets[i]
        try:
            found = find_shards(cfg.shards, d.name, d.split)
        except SsiwError:
            report.missing.append(f"shards {d.name}/{d.split}: not converted yet "
                                  f"(`ssiw convert {d.name} --root DATA --split {d.split} --out {cfg.shards}`)")
            continue
        report.found.append(f"shards {d.name}/{d.split}: {len(found)} tar(s)")


def _same_place(a: str | Path, b: str | Path) -> bool:
    from pipeline import storage

    if storage.is_remote(a) or storage.is_remote(b):
        return str(a).rstrip("/") == str(b).rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def _encoder_id(spec: str) -> str:
    """An encoder spec in canonical form ('open_clip:ViT-B-32' and '...:openai' are one encoder)."""
    from pipeline.embed.encoders import get_encoder

    try:
        return get_encoder(spec).id
    except SsiwError:
        return spec


def _corpus_staleness(corpus, report: CheckReport) -> None:
    """The recipe the corpus was built from, read again: a dataset whose entry changed since (or is new)
    is not built as the recipe now says."""
    from pipeline.corpus.recipe import dataset_hash, load_recipe

    if not Path(corpus.recipe).is_file():
        return
    try:
        recipe = load_recipe(corpus.recipe)
    except SsiwError as e:
        report.problems.append(f"corpus: its recipe no longer reads: {e}")
        return
    for entry in recipe.datasets:
        built = corpus.datasets.get(entry.name)
        if built is None or built.dataset_hash != dataset_hash(recipe, entry):
            what = "is not in the corpus yet" if built is None else "changed since the corpus was built"
            report.missing.append(f"corpus: {entry.name} {what} (`ssiw corpus build {corpus.recipe}`)")


def _corpus(cfg: TrainConfig, table, report: CheckReport) -> None:
    """A config naming a built corpus: what it lists must be in the corpus, built the way it says."""
    from pipeline.corpus.summary import read_summary

    if cfg.corpus is None:
        return
    try:
        corpus = read_summary(cfg.corpus)
    except SsiwError as e:
        report.problems.append(f"corpus: {e}")
        return
    if not _same_place(cfg.shards, corpus.shards):
        report.problems.append(f"shards: {cfg.shards}, but the corpus's shards are at {corpus.shards}")
    for i, d in enumerate(cfg.datasets):
        built = corpus.datasets.get(d.name)
        if built is None:
            report.problems.append(f"datasets[{i}].name: {d.name!r} is not in the corpus {cfg.corpus} (it has "
                                   f"{', '.join(corpus.datasets)}){_did_you_mean(d.name, list(corpus.datasets))}")
        elif d.split not in built.splits:
            report.problems.append(f"datasets[{i}].split: the corpus built {d.name} as {', '.join(built.splits)}, "
                                   f"not {d.split!r}")
        elif d.max_samples is not None and d.max_samples > built.splits[d.split].samples:
            report.found.append(f"datasets[{i}].max_samples: {d.max_samples:,} but the corpus holds "
                                f"{built.splits[d.split].samples:,} samples of {d.name}/{d.split}: all are used")
    if table is not None and _encoder_id(table.encoder) != _encoder_id(corpus.encoder):
        report.problems.append(f"table: encoded with {table.encoder}, but the corpus was embedded with "
                               f"{corpus.encoder}; its tables: {', '.join(corpus.tables.values())}")
    samples = sum(s.samples for d in corpus.datasets.values() for s in d.splits.values())
    report.found.append(f"corpus {cfg.corpus}: {len(corpus.datasets)} datasets, {samples:,} samples, built "
                        f"{corpus.built_at} from {corpus.recipe}")
    _corpus_staleness(corpus, report)


def _out_dir(cfg: TrainConfig, report: CheckReport) -> None:
    from pipeline import storage
    from trainer.cluster import check_out_dir

    if not storage.is_remote(cfg.out_dir):
        return
    try:
        check_out_dir(cfg.out_dir)
    except SsiwError as e:
        report.problems.append(str(e))
        return
    report.found.append(f"out_dir {cfg.out_dir}: the bucket is there")


def check_config(path: Path) -> CheckReport:
    """Validate a training config against the taxonomies, the table, the weights and the shards.
    A field pydantic refuses raises at once (BadInput naming the file and the field)."""
    cfg = load_config(path)
    report = CheckReport(Path(path))
    taxset, whole = _taxonomies(cfg, report)
    table = _table(cfg, report)
    usable = _datasets(cfg, taxset, whole, table, report)
    _held_out(cfg, taxset, table, report)
    _weights(cfg, report)
    _init(cfg, table, report)
    _shards(cfg, usable, report)
    _corpus(cfg, table, report)
    _out_dir(cfg, report)
    return report
