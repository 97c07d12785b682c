"""Augmentation as values (issue #17): "no augmentation" is AugmentParams.none(), the defaults are the
training config's, and a decoded sample and the blank standing in for an unreadable one are one type."""

import numpy as np

from tests.trainer.data.test_trainer_stream import _raw_sample
from trainer.config import TrainConfig
from trainer.data.augment import AugmentParams, DecodedSample, decode_sample
from trainer.data.stream import collate
from trainer.model.checkpoint import RunSettings


def test_no_augmentation_keeps_the_image_labels_and_boxes_as_they_are():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    label = rng.integers(0, 4, (30, 50), dtype=np.uint8)
    label[:5] = 255
    box = [45, 2, 60, 20, 1]  # a third of it outside the image: still kept
    s = decode_sample(_raw_sample(image, label, [box]), np.random.default_rng(0), AugmentParams.none())
    assert s.image.shape == (30, 50, 3) and np.array_equal(s.image, image)
    assert np.array_equal(s.target, np.where(label == 255, -1, label.astype(np.int64)))
    assert s.boxes.tolist() == [[45, 2, 50, 20]] and s.box_classes.tolist() == [1]


def test_augment_and_inference_defaults_are_the_training_configs():
    config = TrainConfig(shards="s", datasets=[{"name": "a"}])
    assert AugmentParams() == AugmentParams.from_config(config)
    saved_without = RunSettings.model_validate({"model": "tiny"})  # a run whose saved config lacks them
    assert (saved_without.short_edge, saved_without.crop, saved_without.width) == (
        config.short_edge, config.crop, config.width)


def test_a_blank_batches_with_decoded_samples():
    image = np.zeros((40, 40, 3), np.uint8)
    decoded = decode_sample(_raw_sample(image, np.zeros((40, 40), np.uint8), None), np.random.default_rng(0),
                            AugmentParams(short_edge=40, scale=(1.0, 1.0), crop=(32, 32)))
    decoded.source = "t"
    blank = DecodedSample.blank("t-000002", "t", (32, 32))
    batch = collate([decoded, blank], ["t"], {"t": None})
    assert batch["image"].shape == (2, 3, 32, 32) and batch["keys"] == ["t-000001", "t-000002"]
    assert (batch["target"][1] == -1).all() and batch["boxes"][1].shape == (0, 4)
