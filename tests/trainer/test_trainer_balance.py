"""Balanced global batches: the slots of each optimizer step's global batch (batch size x ranks) are
given out by ratio and then split across ranks, so every step holds every dataset in its share."""

import numpy as np
import pytest

from trainer.data.stream import batch_counts


def _global_steps(ratios, batch_size, world, steps):
    per_rank = [batch_counts(ratios, batch_size, world, r) for r in range(world)]
    return np.array([[next(seq) for seq in per_rank] for _ in range(steps)])  # steps x ranks x datasets


def test_paper_setting_four_ranks_two_images_nine_datasets():
    steps = _global_steps([1.0] * 9, batch_size=2, world=4, steps=9)
    for s, counts in enumerate(steps):
        print(f"step {s}: " + "  ".join(f"rank{r}={c.tolist()}" for r, c in enumerate(counts)),
              "global", counts.sum(0).tolist())
    assert (steps.sum(2) == 2).all()  # every rank gets its 2 images
    totals = steps.sum(1)  # per step, per dataset, over the ranks
    # 8 slots, 9 datasets: 8 different datasets every step, none twice
    assert (totals.max(1) == 1).all() and ((totals > 0).sum(1) == 8).all()
    # over 9 steps each dataset gets exactly its share: 72 slots / 9 = 8
    assert totals.sum(0).tolist() == [8] * 9
    # the old per-rank sequence gave every rank the same two datasets, so a step held only 2
    same = np.array([[next(seq) for _ in range(1)] for seq in [batch_counts([1.0] * 9, 2)]])[0, 0]
    assert sum(c > 0 for c in same) == 2


def test_global_batch_follows_unequal_ratios_every_step():
    steps = _global_steps([3.0, 1.0], batch_size=2, world=2, steps=20)
    assert (steps.sum(1) == [3, 1]).all()  # 4 slots: 3 + 1 in every single step
    assert not (steps[:, 0] == steps[:, 1]).all()  # the ranks hold different mixes


def test_more_slots_than_datasets_gives_each_its_share_each_step():
    steps = _global_steps([1.0, 1.0, 2.0], batch_size=4, world=2, steps=10)
    assert (steps.sum(1) == [2, 2, 4]).all()


def test_one_rank_keeps_the_old_sequence_and_bad_ranks_are_refused():
    seq = batch_counts([3, 1], 4)
    assert [next(seq) for _ in range(3)] == [[3, 1]] * 3
    with pytest.raises(ValueError, match="rank 2 outside a world of 2"):
        next(batch_counts([1, 1], 2, world=2, rank=2))
