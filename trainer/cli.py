"""`ssiw train`, `ssiw eval`, `ssiw segment`, and models in and out: `ssiw import-ssiw` (the authors'
release) and `ssiw pseudo-label` (labels as data). Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import BadInput, NotFound


def _scales(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BadInput(f"scales must be comma-separated integers, got {text!r}") from None


def train(
    config: Annotated[Path, typer.Argument(help="training YAML (see trainer/configs/example.yaml)")],
    resume: Annotated[str | None, typer.Option(help="checkpoint file, run folder, or 'auto' (this run's newest)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="run on a Ray cluster with Ray Train's TorchTrainer")] = False,
    ray_workers: Annotated[int, typer.Option(help="Ray Train workers (one process each)")] = 1,
    ray_gpu: Annotated[bool, typer.Option(help="one GPU per Ray worker")] = False,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="with --ray: join this cluster (default: $RAY_ADDRESS, else a private Ray on 127.0.0.1)",
    )] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="validate the config without training: fields, dataset names and splits, weights, "
        "table; lists what is not built yet (shards, table); exits 1 naming the field on a real error",
    )] = False,
) -> None:
    """Train on mixed shards with the paper's three losses (one process, torchrun, or --ray)."""
    from trainer.config import load_config

    if check:
        _check(config)
        return
    cfg = load_config(config)
    # `auto` is resolved inside the run, by rank 0 for every rank (trainer/cluster.py agree_on_resume).
    if ray:
        from pipeline.ray_session import start_or_join, stop
        from trainer.train import run_with_ray

        started = start_or_join(ray_address)  # a RaySessionError is shown by the one handler
        try:
            summary = run_with_ray(cfg, ray_workers, ray_gpu, resume)
        finally:
            stop(started)
    else:
        from trainer.train import run_training

        summary = run_training(cfg, resume=resume)
    if summary.get("rank", 0) == 0:
        typer.echo(f"run folder: {summary['run_dir']}  (losses.csv, tb/, checkpoints/)")


def _check(config: Path) -> None:
    """--check: print what was found and what is not built yet; fail on the problems."""
    from trainer.check import check_config

    report = check_config(config)
    for line in report.found:
        typer.echo(f"ok       {line}")
    for line in report.missing:
        typer.echo(f"not yet  {line}")
    if report.problems:
        raise BadInput(f"{config}: " + "; ".join(report.problems))
    typer.echo(f"{config}: valid" + (f", {len(report.missing)} input(s) not built yet" if report.missing else ""))


RUN_HELP = "checkpoint .pt or run folder, local or s3://bucket/prefix/run"


def _run_location(text: str):
    """A run folder or checkpoint argument: a Path, or a URL string (Path would fold s3:// into s3:/)."""
    from pipeline import storage

    return storage.as_location(text)


def evaluate(
    checkpoint: Annotated[str, typer.Argument(help=RUN_HELP)],
    dataset: Annotated[str, typer.Option(help="taxonomy to evaluate on (its labels are embedded, zero-shot)")],
    root: Annotated[Path | None, typer.Option(help="dataset root, read through its format reader")] = None,
    shards: Annotated[str | None, typer.Option(help="shard folder or s3:// URL holding <dataset>/<split>-*.tar")] = None,
    table: Annotated[Path | None, typer.Option(help="embedding table (needed for datasets not trained on)")] = None,
    split: Annotated[str, typer.Option(help="split name")] = "validation",
    scale: Annotated[int | None, typer.Option(
        help="single-scale short edge (default: the training one; 720 with --protocol authors)")] = None,
    multi_scales: Annotated[str, typer.Option(help="short edges for multi-scale; '' to skip")] = "480,720,1080",
    sliding: Annotated[bool, typer.Option(help="sliding window of the training crop size")] = False,
    flip: Annotated[bool, typer.Option(help="also average horizontally flipped passes")] = False,
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N images")] = None,
    out: Annotated[str | None, typer.Option(
        help="report folder, local or s3:// (default: beside the checkpoint, in its run folder)")] = None,
    taxonomies: Annotated[list[Path] | None, typer.Option(
        help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)")] = None,
    protocol: Annotated[str, typer.Option(
        help="'ours' (the trainer's inference) or 'authors': the SSIW release's test, single-scale as "
             "`ssiw segment --scale 720` on an imported run (default scale 720), multi-scale in their "
             "640-px sliding windows; results.json records which")] = "ours",
) -> None:
    """mIoU and per-class IoU: single-scale and multi-scale, as a table, a bar chart and results.json."""
    from pipeline import storage
    from trainer.model.checkpoint import run_folder_of
    from trainer.predict.evaluate import (
        evaluate_checkpoint,
        print_skip,
        samples_from_root,
        samples_from_shards,
        write_report,
    )

    if (root is None) == (shards is None):
        raise BadInput("give exactly one of --root or --shards")
    checkpoint = _run_location(checkpoint)
    tab = None
    if table is not None:
        from trainer.train import load_embedding_table

        tab = load_embedding_table(table)
    skipped = []  # unreadable samples, reported as read and counted in results.json, as training does

    def report_skip(sample) -> None:
        print_skip(sample)
        skipped.append(sample)

    if shards is not None:
        samples = samples_from_shards(shards, dataset, split, limit, on_skip=report_skip)
    else:
        from pipeline.taxonomy.load import load_taxonomy_set

        samples = samples_from_root(load_taxonomy_set(taxonomies).dataset(dataset), root, split, limit)
    results = evaluate_checkpoint(checkpoint, dataset, samples, table=tab, single_scale=scale,
                                  multi_scales=_scales(multi_scales), sliding=sliding, flip=flip,
                                  taxonomies=taxonomies, protocol=protocol, skipped=skipped)
    report_dir = storage.as_location(out) if out else storage.join(run_folder_of(checkpoint), f"eval-{dataset}-{split}")
    paths = write_report(results, report_dir)
    typer.echo(f"wrote {paths['json']} and {paths['chart']}")


def segment(
    checkpoint: Annotated[str, typer.Argument(help=RUN_HELP)],
    images: Annotated[list[Path], typer.Argument(help="images to label")],
    dataset: Annotated[str | None, typer.Option(
        help="use this taxonomy's labels (default, with no --label either: the run's own label space)")] = None,
    label: Annotated[list[str] | None, typer.Option(help="'name: description', repeatable")] = None,
    table: Annotated[Path | None, typer.Option(help="embedding table for --dataset")] = None,
    encoder: Annotated[str | None, typer.Option(help="text encoder for --label (default: the table's)")] = None,
    scale: Annotated[int | None, typer.Option(
        help="short edge (default: the training one; 720 for an imported SSIW release)")] = None,
    sliding: Annotated[bool, typer.Option(help="sliding window of the training crop size")] = False,
    confidence: Annotated[float | None, typer.Option(
        help="pixels whose top probability is not above this become 255 (the SSIW release used 0.5)")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("segment-out"),
    taxonomies: Annotated[list[Path] | None, typer.Option(
        help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)")] = None,
) -> None:
    """Write a label PNG and a coloured overlay with a legend for each image."""
    from trainer.predict.evaluate import class_names_for, run_taxonomies
    from trainer.predict.predictor import Predictor
    from trainer.predict.run_space import softmax_columns
    from trainer.predict.segment import segment_images

    if dataset is not None and label:
        raise BadInput("give either --dataset or --label 'name: description', not both")
    predictor = Predictor.from_checkpoint(_run_location(checkpoint))
    taxonomies = run_taxonomies(taxonomies, predictor.settings)  # else the folders the run trained with
    if not dataset and not label:
        names, vectors = softmax_columns(predictor.label_space, taxonomies)
    elif dataset:
        tab = None
        if table is not None:
            from trainer.train import load_embedding_table

            tab = load_embedding_table(table)
        vectors = predictor.vectors_for(dataset, tab)
        names = class_names_for(dataset, len(vectors), taxonomies, predictor.label_space, tab)
    else:
        names, vectors = _encode_for_run(label, encoder or predictor.encoder or "minilm", predictor)
    written = segment_images(predictor, images, vectors, names, out,
                             [scale or predictor.settings.short_edge], sliding, confidence)
    for w in written:
        typer.echo(f"{w['image']}: {w['overlay']} ({', '.join(w['classes'])})")


def _encode_for_run(specs: list[str], encoder: str, predictor):
    """--label sentences in the run's text encoder; without its weights, say what is needed."""
    from pipeline.embed.adhoc import encode_labels, parse_labels
    from pipeline.embed.encoders import EncoderError

    labels = parse_labels(specs)
    try:
        vectors = encode_labels(labels, encoder)
    except EncoderError as e:
        hint = ""
        if encoder.startswith("open_clip:"):
            model = encoder.split(":")[1] or "ViT-B-32"
            hint = f" Give its weights with --encoder open_clip:{model}:/path/to/open_clip_pytorch_model.bin."
        raise BadInput(f"--label needs the text encoder this run's labels were embedded with ({encoder}).{hint} "
                       f"{e}") from e
    dim = predictor.label_space.vectors.shape[1]
    if vectors.shape[1] != dim:
        raise BadInput(f"--encoder {encoder} gives {vectors.shape[1]}-d vectors but this run uses {dim}-d ones "
                         f"(its encoder: {predictor.encoder})")
    return [x.name for x in labels], vectors


def import_ssiw(
    checkpoint: Annotated[Path, typer.Argument(help="the authors' segformer_7data.pth")],
    embeddings: Annotated[Path, typer.Argument(help="their label embeddings, universal_cat2vec.npy (194 x 512)")],
    out: Annotated[Path, typer.Option(help="run folder to create, e.g. runs/ssiw-release")],
    labels: Annotated[Path | None, typer.Option(
        help="one class name per embedding row (default: the MSeg universal taxonomy, shipped)")] = None,
    encoder: Annotated[str, typer.Option(
        help="text encoder the embeddings came from, used for --label sentences")] = "open_clip:ViT-B-32:openai",
) -> None:
    """Turn the SSIW authors' SegFormer-B5 release into an ssiw run folder (checked tensor by tensor)."""
    from trainer.model.import_ssiw import import_release

    if (out / "checkpoints").exists() and any((out / "checkpoints").glob("step-*.pt")):
        raise BadInput(f"{out}: already holds checkpoints; choose a new --out folder")
    summary = import_release(checkpoint, embeddings, out, labels, encoder)
    typer.echo(f"run folder: {summary['run_dir']} ({summary['labels']} labels, {summary['dim']}-d; "
               f"left out {summary['left_out']} tensors of the auxiliary head and loss)")
    typer.echo(f"try: ssiw segment {summary['run_dir']} photo.jpg --scale 720")


def pseudo_label(
    run: Annotated[str, typer.Argument(help="run folder or checkpoint that predicts the labels, local or s3://")],
    dataset: Annotated[str, typer.Option(help="the dataset whose images are labelled")],
    shards: Annotated[str | None, typer.Option(
        help="shard folder or s3:// URL holding <dataset>/<split>-*.tar")] = None,
    root: Annotated[Path | None, typer.Option(help="or: the dataset's root, read through its taxonomy's format")] = None,
    split: Annotated[str, typer.Option(help="split to label")] = "train",
    out: Annotated[Path | None, typer.Option(help="shard folder to write <name>/<split>-*.tar into")] = None,
    png_dir: Annotated[Path | None, typer.Option(help="or: write plain label PNGs and classes.txt here")] = None,
    taxonomy: Annotated[str | None, typer.Option(help="label in this taxonomy's classes")] = None,
    label: Annotated[list[str] | None, typer.Option(help="or: these labels, 'name: description', repeatable")] = None,
    table: Annotated[Path | None, typer.Option(help="embedding table for --taxonomy (if the run did not train on it)")] = None,
    name: Annotated[str | None, typer.Option(
        help="output dataset name (default: the --taxonomy, else <dataset>-pseudo)")] = None,
    confidence: Annotated[float, typer.Option(help="pixels whose top probability is not above this are ignore")] = 0.5,
    scale: Annotated[int | None, typer.Option(help="short edge (default: the run's; 720 for an imported release)")] = None,
    shard_size: Annotated[str, typer.Option("--shard-size", help="target shard size")] = "1GB",
    ray: Annotated[bool, typer.Option("--ray", help="one Ray task per shard (each loads the network)")] = False,
    taxonomies: Annotated[list[Path] | None, typer.Option(
        help="taxonomy folder layered over the shipped set, repeatable; later ones win (also $SSIW_TAXONOMIES, a path list)")] = None,
) -> None:
    """Label a dataset's images with a run and write them as coarse shards (or label PNGs)."""
    from pipeline import storage
    from pipeline.convert.plan import parse_size
    from trainer.model.checkpoint import RunCheckpoint
    from trainer.predict.pseudo_label import (
        Labeller,
        PseudoLabelReader,
        output_taxonomy,
        write_pngs,
        write_shards,
    )

    if (shards is None) == (root is None):
        raise BadInput("give exactly one of --shards or --root")
    if (out is None) == (png_dir is None):
        raise BadInput("give exactly one of --out (shards) or --png-dir (plain label PNGs)")
    if taxonomy and label:
        raise BadInput("give --taxonomy or --label, not both (neither: the run's own label space)")
    run = _run_location(run)
    ckpt = RunCheckpoint.load(run)
    run_path = str(run if storage.is_remote(run) else Path(run).resolve())
    output, encoder = _choose_output_labels(ckpt.label_space, taxonomy, label, table, taxonomies)
    out_name = name or taxonomy or f"{dataset}-pseudo"
    labeller = Labeller(run_path, ckpt.step, output, encoder, scale or ckpt.settings.short_edge, confidence, dataset)
    source_tax = None
    if root is not None:
        from pipeline.taxonomy.load import load_taxonomy_set

        source_tax = load_taxonomy_set(taxonomies).dataset(dataset)
        if split not in source_tax.splits:
            raise BadInput(f"{dataset}: no split {split!r} (it lists: {', '.join(source_tax.splits)})")
        images, where = source_tax.splits[split].images, root
    else:
        from pipeline.shard_format import shard_pattern
        from pipeline.shards.read import split_shards

        images, where = shard_pattern(split), storage.join(storage.as_location(shards), dataset)
        if not split_shards(where, split):
            raise NotFound(f"no shards match {storage.join(where, images)}")
    tax = output_taxonomy(out_name, output, split, images)
    # Local shards are planned from the root the runner resolves; object storage has no local root.
    remote = shards is not None and storage.is_remote(where)
    reader = PseudoLabelReader(labeller, source_tax, shards=str(where) if remote else None)
    if png_dir is not None:
        summary = write_pngs(reader, tax, where, split, png_dir)
        typer.echo(f"{summary['folder']}: {summary['written']} label PNGs written, {summary['kept']} kept from "
                   f"before, {summary['errors']} errors (errors.jsonl); classes.txt lists the {tax.num_classes}"
                   f" classes, {tax.ignore_index} = below confidence")
        return
    result = write_shards(reader, tax, where, split, out, parse_size(shard_size), use_ray=ray)
    typer.echo(f"{out / out_name}: {result.shards} shards ({result.shards - result.kept} made now, {result.kept} kept "
               f"from before), {result.written} samples, {result.quarantined} quarantined; supervision coarse, "
               f"{tax.num_classes} classes")


def _choose_output_labels(space, taxonomy, label, table, taxonomies):
    """The labels to predict in: a taxonomy's classes, --label sentences, or the run's softmax columns."""
    from trainer.predict.pseudo_label import OutputLabels
    from trainer.predict.run_space import softmax_columns

    if taxonomy:
        from pipeline.taxonomy.load import load_taxonomy_set

        tax = load_taxonomy_set(taxonomies).dataset(taxonomy)
        tab = None
        if table is not None:
            from trainer.train import load_embedding_table

            tab = load_embedding_table(table)
        vectors = space.vectors_for(taxonomy, tab)
        return OutputLabels(tuple(tax.class_names), vectors, f"taxonomy:{taxonomy}",
                            tuple(tax.class_labels)), space.encoder
    if label:
        from pipeline.embed.adhoc import encode_labels, parse_labels

        labels = parse_labels(label)
        vectors = encode_labels(labels, space.encoder or "minilm")
        return OutputLabels(tuple(x.name for x in labels), vectors, "labels"), space.encoder
    names, vectors = softmax_columns(space)
    return OutputLabels(tuple(names), vectors, "run"), space.encoder


def eval_tables(
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    table: Annotated[Path, typer.Option(help="embedding table holding the test sets' labels (same encoder as the run)")],
    shards: Annotated[Path | None, typer.Option(help="shard folder holding <dataset>/<split>-*.tar")] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="folder holding each dataset's root as <dataset>/, read through its format")] = None,
    stand_in: Annotated[list[str] | None, typer.Option(
        "--stand-in", help="SET=DATASET[:SPLIT]: score DATASET in the place of the paper's SET (e.g. the demo's "
                           "CamVid=demo-heldout:val), repeatable")] = None,
    protocol: Annotated[str, typer.Option(help="'ours' or 'authors' (see `ssiw eval --help`)")] = "ours",
    scale: Annotated[int | None, typer.Option(help="single-scale short edge (default: as `ssiw eval`)")] = None,
    multi_scales: Annotated[str, typer.Option(
        help="short edges of the multi-scale (ms) sets; '' scores them single-scale (marked)")] = "480,720,1080",
    paper_row3: Annotated[str, typer.Option(help="Table 3 row shown beside ours")] = "Ours (Segformer-B5, HD+OI+OB)",
    paper_row4: Annotated[str, typer.Option(help="Table 4 row shown beside ours")] = "Ours (Sentence)",
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N images of each set")] = None,
    out: Annotated[str | None, typer.Option(help="output folder, local or s3:// (default: <run>/paper-tables)")] = None,
    taxonomies: Annotated[Path | None, typer.Option(help="taxonomy folder (default: the shipped one)")] = None,
) -> None:
    """Evaluate a run on every zero-shot set of the paper's Tables 3 and 4 that is present (absent ones are
    listed) and write tables.md and tables.json with the paper's published numbers beside ours."""
    from pipeline import storage
    from trainer.model.checkpoint import run_folder_of
    from trainer.predict.evaluate import evaluate_checkpoint
    from trainer.predict.paper_tables import build_report, locate, parse_stand_ins, samples_for, write_tables
    from trainer.predict.predictor import Predictor
    from trainer.train import load_embedding_table

    if shards is None and data_root is None:
        raise BadInput("give --shards or --data-root (or both) to say where the test sets are")
    found = locate(shards, data_root, parse_stand_ins(stand_in or []))
    run = _run_location(run)
    tab = load_embedding_table(table)
    predictor = Predictor.from_checkpoint(run)
    multi = _scales(multi_scales)

    def evaluate_set(source, multi_scale: bool) -> dict:
        typer.echo(f"evaluating {source.dataset}/{source.split} ({'ms' if multi_scale else 'ss'})")
        return evaluate_checkpoint(run, source.dataset, samples_for(source, taxonomies, limit), table=tab,
                                   single_scale=scale, multi_scales=multi if multi_scale else [],
                                   predictor=predictor, taxonomies=taxonomies, protocol=protocol)

    report = build_report(str(run), protocol, found, evaluate_set, paper_row3, paper_row4, tuple(multi))
    paths = write_tables(report, storage.as_location(out) if out else storage.join(run_folder_of(run), "paper-tables"))
    for name, why in report["absent"].items():
        typer.echo(f"absent: {name} ({why})")
    typer.echo(f"wrote {paths['markdown']} and {paths['json']}")
