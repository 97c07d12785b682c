"""A run's softmax columns as names and vectors (the labels it was trained on, or the release's 194 for
an imported run), and one entry point that labels an image over any label vectors, by the run's
inference procedure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.shard_format import ignore_value


def softmax_columns(space, taxonomies: Path | None = None) -> tuple[list[str], np.ndarray]:
    """(names, vectors) of every column of the run's softmax (a LabelSpace), in column order.

    Runs saved before names were recorded get them from their datasets' taxonomies (a column shared
    by several datasets lists each distinct class name once, joined with '/')."""
    vectors = np.asarray(space.vectors, dtype=np.float32)
    if space.names is not None and len(space.names) == len(vectors):
        return [str(n) for n in space.names], vectors
    from trainer.predict.evaluate import class_names_for

    found: list[list[str]] = [[] for _ in range(len(vectors))]
    for dataset, columns in space.columns.items():
        columns = np.asarray(columns)
        for column, name in zip(columns.tolist(), class_names_for(dataset, len(columns), taxonomies, space)):
            if name not in found[column]:
                found[column].append(name)
    return ["/".join(n) if n else f"label {i}" for i, n in enumerate(found)], vectors


def label_image(predictor, image: np.ndarray, vectors: np.ndarray, scale: int, window=None,
                cut: float | None = None) -> np.ndarray:
    """Column index per pixel (int64), or the ignore value where the top probability is not above `cut`.

    Imported runs (config `inference: authors`) use the authors' single-scale procedure; other runs
    the trainer's (scores at network resolution, upsampled, softmax with the learned temperature)."""
    if predictor.settings.inference == "authors":
        from trainer.predict.authors import authors_predict

        labels, _ = authors_predict(predictor.net, image, vectors, scale, cut, predictor.device)
        return labels
    scores = predictor.scores(image, vectors, [scale], window)
    labels = scores.argmax(0).astype(np.int64)
    if cut is not None:
        labels = np.where(scores.max(0) > cut, labels, ignore_value(len(vectors)))
    return labels
