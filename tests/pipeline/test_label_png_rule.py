"""One rule for label PNGs (issue #17): uint8 with ignore 255 up to 254 classes, uint16 with ignore 65535
above, the same for converted shards, pseudo-labels and predicted label maps (`ssiw segment`)."""

import numpy as np
import pytest
import torch

from pipeline.shard_format import Supervision, ignore_value, label_dtype
from pipeline.taxonomy.schema import ClassEntry, DatasetTaxonomy, SplitSpec
from trainer.predict.authors import geometry, labels_from_embeddings


def _taxonomy(k: int) -> DatasetTaxonomy:
    return DatasetTaxonomy(name="toy", version="1", homepage="", format="pseudo-label", supervision=Supervision.coarse,
                           splits={"train": SplitSpec(images="*.jpg")},
                           classes=[ClassEntry(name=f"c{i}", label=f"c{i}", raw_id=i) for i in range(k)])


@pytest.mark.parametrize(("k", "dtype", "ignore"), [(2, "uint8", 255), (254, "uint8", 255), (255, "uint16", 65535),
                                                    (300, "uint16", 65535)])
def test_the_switch_is_above_254_classes_for_shards_and_predictions(k, dtype, ignore):
    assert (label_dtype(k), ignore_value(k)) == (dtype, ignore)
    tax = _taxonomy(k)
    assert (tax.label_dtype, tax.ignore_index) == (dtype, ignore)  # shards and pseudo-label PNGs
    # A predicted map with a confidence cut no pixel passes: every pixel is the ignore value of k labels.
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(k, 8)).astype(np.float32)
    labels, _ = labels_from_embeddings(torch.randn(8, 4, 4), vectors, geometry(16, 16, 16), cut=1.0)
    assert np.unique(labels).tolist() == [ignore]
    assert labels.max() <= np.iinfo(dtype).max
