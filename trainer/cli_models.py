"""`ssiw import-ssiw` and `ssiw pseudo-label`: models in (the authors' release) and out (labels as data).
Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import BadInput, NotFound


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
    from trainer.import_ssiw import import_release

    if (out / "checkpoints").exists() and any((out / "checkpoints").glob("step-*.pt")):
        raise BadInput(f"{out}: already holds checkpoints; choose a new --out folder")
    summary = import_release(checkpoint, embeddings, out, labels, encoder)
    typer.echo(f"run folder: {summary['run_dir']} ({summary['labels']} labels, {summary['dim']}-d; "
               f"left out {summary['left_out']} tensors of the auxiliary head and loss)")
    typer.echo(f"try: ssiw segment {summary['run_dir']} photo.jpg --scale 720")


def pseudo_label(
    run: Annotated[Path, typer.Argument(help="run folder or checkpoint that predicts the labels")],
    dataset: Annotated[str, typer.Option(help="the dataset whose images are labelled")],
    shards: Annotated[Path | None, typer.Option(help="shard folder holding <dataset>/<split>-*.tar")] = None,
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
    taxonomies: Annotated[Path | None, typer.Option(help="taxonomy folder (default: the shipped one)")] = None,
) -> None:
    """Label a dataset's images with a run and write them as coarse training shards (or label PNGs)."""
    from pipeline.convert.plan import parse_size
    from trainer.checkpoint import load_checkpoint
    from trainer.pseudo_label import Labeller, PseudoLabelReader, output_taxonomy, write_pngs, write_shards

    if (shards is None) == (root is None):
        raise BadInput("give exactly one of --shards or --root")
    if (out is None) == (png_dir is None):
        raise BadInput("give exactly one of --out (shards) or --png-dir (plain label PNGs)")
    if taxonomy and label:
        raise BadInput("give --taxonomy or --label, not both (neither: the run's own label space)")
    state = load_checkpoint(run)
    run_path = str(Path(run).resolve())
    space, encoder = _choose_space(state, taxonomy, label, table, taxonomies)
    out_name = name or taxonomy or f"{dataset}-pseudo"
    cfg = state["config"]
    labeller = Labeller(run_path, int(state.get("step", 0)), space, encoder,
                        int(scale or cfg.get("short_edge", 1080)), confidence, dataset)
    source_tax = None
    if root is not None:
        from pipeline.taxonomy.load import load_taxonomy_set

        source_tax = load_taxonomy_set(taxonomies).dataset(dataset)
        if split not in source_tax.splits:
            raise BadInput(f"{dataset}: no split {split!r} (it lists: {', '.join(source_tax.splits)})")
        images, where = source_tax.splits[split].images, root
    else:
        images, where = f"{split}-*.tar", shards / dataset
        if not sorted(where.glob(images)):
            raise NotFound(f"no shards match {where / images}")
    tax = output_taxonomy(out_name, space, split, images)
    reader = PseudoLabelReader(labeller, source_tax)
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


def _choose_space(state: dict, taxonomy, label, table, taxonomies):
    """The label space to predict in: a taxonomy's classes, --label sentences, or the run's own."""
    import numpy as np

    from trainer.labels import LabelSpace
    from trainer.pseudo_label import LabelSpaceChoice
    from trainer.run_space import own_label_space

    space = LabelSpace.from_dict(state["label_space"])
    if taxonomy:
        from pipeline.taxonomy.load import load_taxonomy_set

        tax = load_taxonomy_set(taxonomies).dataset(taxonomy)
        if table is not None:
            from trainer.train import load_embedding_table

            tab = load_embedding_table(table)
            vectors = np.asarray(tab.vectors, dtype=np.float32)[np.asarray(tab.rows_for(taxonomy))]
        elif taxonomy in space.columns:
            vectors = space.dataset_vectors(taxonomy)
        else:
            raise BadInput(f"the run did not train on {taxonomy!r}; give --table with its embeddings "
                             f"(encoder {space.encoder})")
        return LabelSpaceChoice(tuple(tax.class_names), vectors, f"taxonomy:{taxonomy}",
                                tuple(tax.class_labels)), space.encoder
    if label:
        from pipeline.embed.adhoc import encode_labels, parse_labels

        labels = parse_labels(label)
        vectors = encode_labels(labels, space.encoder or "minilm")
        return LabelSpaceChoice(tuple(x.name for x in labels), vectors, "labels"), space.encoder
    names, vectors = own_label_space(space)
    return LabelSpaceChoice(tuple(names), vectors, "run"), space.encoder
