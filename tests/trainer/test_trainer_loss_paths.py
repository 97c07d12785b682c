"""The loss at the full label space: scoring bands of rows (chunked, recomputed in backward) gives
the same per-pixel losses and gradients as upsampling every label map at once."""

import pytest
import torch

from trainer.losses import SentenceLoss, chunked_pixel_losses, full_pixel_losses, pixel_logits


@pytest.mark.parametrize(("low", "out"), [((5, 7), (20, 28)), ((8, 8), (29, 31)), ((10, 10), (7, 9)), ((4, 6), (4, 6))])
@pytest.mark.parametrize("chunk", [1, 200, 10**9])
def test_chunked_scores_equal_full_upsampling(low, out, chunk):
    torch.manual_seed(0)
    scores = torch.randn(2, 9, *low, requires_grad=True)
    target = torch.randint(-1, 9, (2, *out))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 7:] = False  # sample 1's own softmax has 7 labels
    target[1] = target[1].clamp(max=6)
    a, va = full_pixel_losses(scores, target, mask)
    ga, = torch.autograd.grad(a.sum(), scores)
    b, vb = chunked_pixel_losses(scores, target, mask, chunk=chunk)
    gb, = torch.autograd.grad(b.sum(), scores)
    assert torch.equal(va, vb)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5)


def _batch(b, h, w, supervision):
    g = torch.Generator().manual_seed(1)
    return {"target": torch.randint(-1, 6, (b, h, w), generator=g), "supervision": torch.tensor(supervision),
            "keys": [f"k{i}" for i in range(b)], "datasets": ["d"] * b,
            "boxes": [torch.zeros(0, 4)] * b, "box_classes": [torch.zeros(0, dtype=torch.long)] * b,
            "box_targets": [None] * b}


def test_sentence_loss_is_the_same_on_both_paths():
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(6, 5), dim=1)
    emb = torch.randn(3, 5, 6, 8)
    batch = _batch(3, 24, 32, [0, 1, 1])
    columns = [torch.arange(6)] * 3
    results = {}
    for chunk in (None, 300):
        crit = SentenceLoss(vectors, 5, tau=0.1, chunk=chunk)
        e = emb.clone().requires_grad_()
        out = crit(e, batch, columns, None)
        out["total"].backward()
        results[chunk] = (out, e.grad, crit.log_tau.grad)
    (full, g_full, t_full), (chunked, g_chunk, t_chunk) = results[None], results[300]
    for k in ("hd", "ld", "total"):
        assert chunked[k].item() == pytest.approx(full[k].item(), rel=1e-5)
    torch.testing.assert_close(g_chunk, g_full, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(t_chunk, t_full, rtol=1e-4, atol=1e-6)


def test_held_out_columns_are_ignored_pixels():
    vectors = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    crit = SentenceLoss(vectors, 3)
    emb = torch.randn(1, 3, 4, 4)
    batch = _batch(1, 8, 8, [0])
    batch["target"] = torch.full((1, 8, 8), 2)
    batch["target"][0, :4] = 1
    held = crit(emb, batch, [torch.tensor([0, 1, -1, 3])], None)  # class 2 held out: column -1
    top = {**batch, "target": batch["target"].masked_fill(batch["target"] == 2, -1)}
    plain = crit(emb, top, [torch.tensor([0, 1, 2, 3])], None)
    assert held["hd"].item() == pytest.approx(plain["hd"].item(), rel=1e-6)
    logits = pixel_logits(emb, vectors, crit.log_tau)
    assert logits.shape[1] == 4


@pytest.mark.parametrize("chunk", [None, 300])
def test_both_paths_train_under_bf16_autocast(chunk):
    """On CUDA the trainer runs the loss under bf16 autocast, so the banded backward sees bf16 scores.
    CPU autocast hands the loss the same dtypes: loss and gradients stay close to float32's."""
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(40, 16), dim=1)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1)
    images = torch.randn(2, 3, 8, 10)
    batch = _batch(2, 32, 40, [0, 1])
    columns = [torch.arange(6)] * 2
    results = {}
    for amp in (False, True):
        conv.zero_grad()
        crit = SentenceLoss(vectors, 16, chunk=chunk)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            emb = conv(images)
            out = crit(emb, batch, columns, None)
        assert (emb.dtype == torch.bfloat16) == amp  # autocast did reach the network
        out["total"].backward()
        results[amp] = (out["total"].item(), conv.weight.grad.flatten().clone())
    (loss32, grad32), (loss16, grad16) = results[False], results[True]
    assert torch.isfinite(grad16).all()
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.99


def test_band_size_follows_the_device():
    """A GPU gets large bands (small ones are launch-bound there: 0.59 s vs 0.05 s a step on an H200),
    a CPU small ones; a config that names no size gets the device's."""
    from trainer.config import TrainConfig
    from trainer.losses import CPU_CHUNK, GPU_CHUNK, default_chunk

    assert default_chunk("cpu") == CPU_CHUNK
    assert default_chunk(torch.device("cuda", 0)) == GPU_CHUNK > CPU_CHUNK
    assert TrainConfig.model_fields["loss_chunk_pixels"].default is None
