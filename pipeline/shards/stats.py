"""`ssiw shards stats`: per-dataset and per-class counts from the manifests, and a bar chart."""

from __future__ import annotations

from pathlib import Path

from pipeline import storage
from pipeline.errors import NotFound
from pipeline.shard_format import INDEX_FILE, MANIFEST_SUFFIX, quarantine_name


def load_manifests(out_dir: storage.Location):
    import polars as pl

    paths = storage.glob(out_dir, f"*/*{MANIFEST_SUFFIX}")
    if not paths:
        raise NotFound(f"no manifests under {out_dir}: run `ssiw convert` first")
    return pl.concat([storage.read_parquet(p) for p in paths])


def dataset_table(out_dir: storage.Location, manifests):
    """One row per (dataset, split): shards, samples, GB, quarantined."""
    import polars as pl

    index = storage.read_parquet(storage.join(out_dir, INDEX_FILE))
    per_split = (
        index.group_by(["dataset", "split"])
        .agg(pl.col("supervision").first(), pl.len().alias("shards"), pl.col("bytes").sum())
        .join(manifests.group_by(["dataset", "split"]).agg(pl.len().alias("samples")), on=["dataset", "split"])
        .sort(["dataset", "split"])
    )
    quarantined = []
    for d, s in zip(per_split["dataset"], per_split["split"]):
        q = storage.join(out_dir, d, quarantine_name(s))
        quarantined.append(len(storage.read_text(q).splitlines()) if storage.exists(q) else 0)
    return per_split.with_columns(pl.Series("quarantined", quarantined))


def class_table(manifests):
    """One row per (dataset, class index): images containing it and its share of labelled pixels."""
    import polars as pl

    exploded = manifests.select("dataset", "classes_present", "class_pixels").explode(["classes_present", "class_pixels"])
    exploded = exploded.drop_nulls("classes_present")
    table = (
        exploded.group_by(["dataset", "classes_present"])
        .agg(pl.len().alias("images"), pl.col("class_pixels").sum().alias("pixels"))
        .rename({"classes_present": "class_index"})
    )
    totals = table.group_by("dataset").agg(pl.col("pixels").sum().alias("total"))
    return (
        table.join(totals, on="dataset")
        .with_columns((pl.col("pixels") / pl.col("total")).alias("pixel_share"))
        .drop("total")
        .sort(["dataset", "images", "class_index"], descending=[False, True, False])
    )


def class_names(taxonomies: Path | None) -> dict[str, list[str]]:
    """Dataset -> class names, when the taxonomy folder loads; else indices are shown."""
    from pipeline.taxonomy.load import TaxonomyError, load_taxonomy_set

    try:
        taxset = load_taxonomy_set(taxonomies)
    except TaxonomyError:
        return {}
    return {name: tax.class_names for name, tax in taxset.datasets.items()}


def plot(per_split, per_class, names: dict[str, list[str]], png: storage.Location, top: int) -> None:
    """Samples per dataset, then the `top` most frequent classes of each dataset (images containing)."""
    import matplotlib
    import polars as pl

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.safe_write import save_figure

    datasets = sorted(set(per_class["dataset"]))
    fig, axes = plt.subplots(len(datasets) + 1, 1, figsize=(12, 3 + 3 * len(datasets)), squeeze=False)
    samples = per_split.group_by("dataset").agg(pl.col("samples").sum().alias("n")).sort("dataset")
    axes[0][0].bar(samples["dataset"].to_list(), samples["n"].to_list(), color="tab:blue")
    axes[0][0].set_title("samples per dataset")
    axes[0][0].tick_params(axis="x", labelrotation=30)
    for ax, dataset in zip((row[0] for row in axes[1:]), datasets):
        rows = per_class.filter(per_class["dataset"] == dataset).head(top)
        labels = [class_name(names, dataset, i) for i in rows["class_index"]]
        ax.bar(range(len(labels)), rows["images"].to_list(), color="tab:green")
        ax.set_xticks(range(len(labels)), labels, rotation=75, fontsize=7)
        ax.set_title(f"{dataset}: images containing each class (top {len(labels)})")
    fig.tight_layout()
    save_figure(fig, png, dpi=100)


def class_name(names: dict[str, list[str]], dataset: str, index: int) -> str:
    known = names.get(dataset)
    return known[index] if known and index < len(known) else str(index)
