"""The paper's losses checked against hand computation on tiny tensors."""

import math

import numpy as np
import pytest
import torch

from trainer.losses import SentenceLoss, hd_loss, ld_loss, pixel_logits, pixel_losses, wd_loss


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_hd_loss_matches_hand_computation():
    # Two pixels, 2-d embeddings, three labels; pixel 1 is ignored in the second case.
    emb = torch.tensor([[3.0, 4.0], [1.0, 0.0]]).T.reshape(1, 2, 1, 2)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    tau = 0.5
    target = torch.tensor([[[0, 2]]])
    loss, valid = pixel_losses(pixel_logits(emb, labels, torch.tensor(math.log(tau))), target)
    expected = []
    for pixel, y in (([3, 4], 0), ([1, 0], 2)):
        cos = np.array([_unit(pixel) @ _unit(label) for label in labels.numpy()])
        z = cos / tau
        expected.append(-z[y] + math.log(np.exp(z).sum()))
    assert hd_loss(loss, valid).item() == pytest.approx(np.mean(expected), rel=1e-5)

    target_ignored = torch.tensor([[[0, -1]]])
    loss, valid = pixel_losses(pixel_logits(emb, labels, torch.tensor(math.log(tau))), target_ignored)
    assert hd_loss(loss, valid).item() == pytest.approx(expected[0], rel=1e-5)


def test_own_dataset_softmax_drops_other_labels():
    emb = torch.tensor([0.6, 0.8]).reshape(1, 2, 1, 1)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071]])
    logits = pixel_logits(emb, labels, torch.tensor(0.0))
    mask = torch.tensor([[True, True, False]])
    loss, _ = pixel_losses(logits, torch.tensor([[[1]]]), mask)
    z = np.array([0.6, 0.8])
    assert loss.item() == pytest.approx(-z[1] + math.log(np.exp(z).sum()), rel=1e-4)


def test_ld_keeps_pixels_at_or_below_the_70th_percentile_per_image():
    # Image 0: losses 1..10 -> numpy's 70th percentile is 7.3, keep 1..7. Image 1: 10,20,30 + an ignored pixel:
    # percentile of the valid values 10,20,30 is 24 -> keep 10, 20.
    loss = torch.zeros(2, 1, 10)
    loss[0, 0] = torch.arange(1.0, 11.0)
    loss[1, 0, :4] = torch.tensor([10.0, 20.0, 30.0, 99.0])
    valid = torch.zeros(2, 1, 10, dtype=torch.bool)
    valid[0] = True
    valid[1, 0, :3] = True
    assert np.percentile(np.arange(1, 11), 70) == pytest.approx(7.3)
    # Equation 5 divides by M, the valid pixels of the images given (13): not the kept pixels (9), not H x W (20).
    expected = (sum(range(1, 8)) + 10 + 20) / 13
    assert ld_loss(loss, valid, 0.7).item() == pytest.approx(expected)
    assert ld_loss(loss, valid, 0.7).item() != pytest.approx((sum(range(1, 8)) + 10 + 20) / 9)
    assert ld_loss(loss[:1], valid[:1], 0.7).item() == pytest.approx(28 / 10)  # 1..7 kept, M = 10
    assert ld_loss(loss[1:], valid[1:], 0.7).item() == pytest.approx(30 / 3)  # 10, 20 kept; 30 and the ignored 99 not
    assert ld_loss(loss, valid, 1.0).item() == pytest.approx((55 + 60) / 13)


def test_ld_loss_is_equation_5_computed_by_hand():
    """L_LD = -(1/M) sum_i w_i y_i log(l_i) (eq. 5), l_i the softmax of z_ij / tau (eq. 1-2), w_i = 0 where
    |log l_i| is above its image's 70th percentile mu (eq. 4), M the valid pixels: computed here from the
    equations with numpy on one image of five pixels (one ignored), then by the trainer's loss path."""
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(2, 1, 5))  # C=2, H=1, W=5
    labels = rng.normal(size=(3, 2))  # N=3 labels
    target = np.array([[0, 2, 1, -1, 2]])  # pixel 3 is not valid
    tau = 0.3
    neg_log_l = []
    for i in range(5):
        if target[0, i] < 0:
            continue
        z = np.array([_unit(emb[:, 0, i]) @ _unit(e) for e in labels])  # eq. 1
        l = np.exp(z / tau) / np.exp(z / tau).sum()  # eq. 2
        neg_log_l.append(-math.log(l[target[0, i]]))  # y_i log(l_i) with a one-hot y_i
    neg_log_l = np.array(neg_log_l)
    mu = np.percentile(neg_log_l, 70)  # eq. 4's adaptive threshold for this image
    w = (np.abs(neg_log_l) <= mu).astype(float)
    assert 0 < w.sum() < len(w)  # some pixels are dropped, so the divisor matters
    M = len(neg_log_l)
    expected = (w * neg_log_l).sum() / M  # eq. 5

    logits = pixel_logits(torch.tensor(emb, dtype=torch.float32)[None], torch.tensor(labels, dtype=torch.float32),
                          torch.tensor(math.log(tau)))
    loss, valid = pixel_losses(logits, torch.tensor(target)[None])
    assert ld_loss(loss, valid, 0.7).item() == pytest.approx(expected, rel=1e-5)
    # every pixel kept (q = 1): L_LD is L_HD, eq. 3, since both divide by the same M
    assert ld_loss(loss, valid, 1.0).item() == pytest.approx(hd_loss(loss, valid).item(), rel=1e-6)


def test_learnable_temperature_gradient_matches_hand_derivative():
    emb = torch.tensor([0.6, 0.8]).reshape(1, 2, 1, 1)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    log_tau = torch.tensor(math.log(0.2), requires_grad=True)
    loss, valid = pixel_losses(pixel_logits(emb, labels, log_tau), torch.tensor([[[0]]]))
    hd_loss(loss, valid).backward()
    # z_k = cos_k * exp(-t): dL/dt = sum_k (p_k - [k=y]) * (-z_k) = z_y - sum_k p_k z_k
    z = np.array([0.6, 0.8]) / 0.2
    p = np.exp(z) / np.exp(z).sum()
    assert log_tau.grad.item() == pytest.approx(z[0] - (p * z).sum(), rel=1e-5)
    assert log_tau.grad.item() < 0  # the wrong label scores higher: descent softens (raises tau)


def test_wd_loss_hand_example():
    # Embedding map 2 channels, 8x8; the box covers the left half where every pixel is (1, 0).
    emb = torch.zeros(1, 2, 8, 8)
    emb[0, 0, :, :4] = 1.0
    emb[0, 1, :, 4:] = 1.0
    head = torch.nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
        head.bias.zero_()
    target = torch.tensor([[3.0, 4.0]])
    box = torch.tensor([[0.0, 0.0, 8.0, 16.0]])  # image pixels; the map is at 1/2 resolution
    value = wd_loss(emb, [box], [target], head, spatial_scale=0.5, output_size=2)
    assert value.item() == pytest.approx(abs(1 - 0.6) + abs(0 - 0.8), rel=1e-5)
    # two boxes: the mean of the two distances
    box2 = torch.tensor([[8.0, 0.0, 16.0, 16.0]])
    value = wd_loss(emb, [torch.cat([box, box2])], [torch.cat([target, target])], head, 0.5, 2)
    assert value.item() == pytest.approx((1.2 + (0.6 + abs(1 - 0.8))) / 2, rel=1e-5)


def test_mixed_batch_sums_each_samples_own_loss():
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    crit = SentenceLoss(vectors, 3, tau=0.1, quantile=0.7)
    emb = torch.randn(3, 3, 4, 4)
    target = torch.randint(0, 2, (3, 4, 4))
    batch = {
        "target": target, "supervision": torch.tensor([0, 1, 2]), "keys": ["a", "b", "c"], "datasets": ["x", "y", "z"],
        "boxes": [torch.zeros(0, 4), torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 2.0, 2.0]])],
        "box_classes": [torch.zeros(0, dtype=torch.long)] * 2 + [torch.tensor([1])],
        "box_targets": [None, None, None],
    }
    columns = [torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1, 3])]
    out = crit(emb, batch, columns, None)
    assert set(out) == {"hd", "ld", "wd", "total"}
    assert out["total"].item() == pytest.approx((out["hd"] + out["ld"] + out["wd"]).item(), rel=1e-6)
    # The dense sample's loss alone equals L_HD computed directly with its columns.
    logits = pixel_logits(emb[:1], vectors, crit.log_tau)
    loss, valid = pixel_losses(logits, columns[0][target[:1]])
    assert out["hd"].item() == pytest.approx(hd_loss(loss, valid).item(), rel=1e-5)
    # The box target falls back to the class's text embedding (column 3 of the box sample's dataset).
    direct = wd_loss(emb[2:], [batch["boxes"][2]], [vectors[3:4]], crit.box_head, 1.0, crit.roi_size)
    assert out["wd"].item() == pytest.approx(direct.item(), rel=1e-5)


def test_class_index_beyond_dataset_is_a_clear_error():
    crit = SentenceLoss(torch.eye(3), 3)
    batch = {"target": torch.full((1, 2, 2), 5), "supervision": torch.tensor([0]), "keys": ["k1"],
             "datasets": ["d"], "boxes": [torch.zeros(0, 4)], "box_classes": [torch.zeros(0, dtype=torch.long)],
             "box_targets": [None]}
    with pytest.raises(ValueError, match="k1.*class index 5"):
        crit(torch.randn(1, 3, 2, 2), batch, [torch.tensor([0, 1, 2])], None)
