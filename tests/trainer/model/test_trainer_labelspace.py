"""Classes a taxonomy lists but its shards never contain cost nothing: they stay out of the label
space (OpenImages lists all 601 boxable classes while its masks cover a subset)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.synthetic import TinyTable
from trainer.model.label_space import LabelSpace, classes_present


def test_absent_classes_leave_the_softmax():
    # Nine distinct labels (six of oi, three of ade), named without a dataset prefix so no taxonomy is needed.
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((9, 16)).astype(np.float32)
    table = TinyTable(labels=[f"oi_{i}" for i in range(6)] + [f"ade_{i}" for i in range(3)],
                      vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                      lookup={"oi": list(range(6)), "ade": [6, 7, 8]})
    full = LabelSpace.from_table(table, ["oi", "ade"])
    assert len(full.rows) == 9 and full.column_mask("oi").sum() == 6
    space = LabelSpace.from_table(table, ["oi", "ade"], present={"oi": {0, 4}})
    assert len(space.rows) == 5  # 2 of oi + 3 of ade
    cols = space.columns["oi"]
    assert (cols[[1, 2, 3, 5]] == -1).all() and (cols[[0, 4]] >= 0).all()
    assert space.column_mask("oi").sum() == 2 and space.column_mask("ade").sum() == 3
    # The kept classes keep their own vectors.
    assert np.allclose(space.vectors[cols[4]], table.vectors[table.rows_for("oi")[4]])


def test_classes_present_reads_the_manifest(tmp_path):
    folder = tmp_path / "oi"
    folder.mkdir()
    pq.write_table(pa.table({"key": ["a", "b"], "classes_present": [[3, 7], [7, 11]]}),
                   folder / "train.manifest.parquet")
    assert classes_present(tmp_path, "oi", "train") == {3, 7, 11}
    assert classes_present(tmp_path, "oi", "validation") is None
