"""The paper's losses (equations 1-7): every class is a sentence embedding, and a pixel's score for
a class is the cosine similarity of the two, divided by a learnable temperature.

- L_HD (dense): cross-entropy over all valid pixels.
- L_LD (coarse): the same per-pixel loss, weighted per image by w_i = 1 only for pixels at or below
  that image's q-th loss percentile (q = 0.7; equation 4), since the noisiest pixels of a coarse mask
  are the likeliest wrong; the weighted sum is divided by M, the valid pixels, as L_HD is (equation 5).
- L_WD (box): RoI-align the pixel embeddings over each box, a 1x1 conv, then the L1 distance
  between the normalised pooled vector and the normalised box target.

Scores are computed at the network's resolution and upsampled to the crop. With the full label space
(K = 700+ labels) the crop-sized score maps are the largest tensors of a step (2 x 725 x 640 x 640
float32 = 2.4 GB, plus as much again for softmax and gradient), so they are made and scored a band of
rows at a time and recomputed in the backward pass (`chunked_pixel_losses`): the loss is the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import BadInput
from pipeline.shard_format import Supervision

DENSE, COARSE, BOX = (s.code for s in Supervision)  # batch["supervision"] holds these codes


def pixel_logits(emb: torch.Tensor, vectors: torch.Tensor, log_tau: torch.Tensor) -> torch.Tensor:
    """emb (B,C,H,W), vectors (K,C) -> cos(pixel, label) / tau as (B,K,H,W)."""
    e = F.normalize(emb.float(), dim=1)
    v = F.normalize(vectors.float(), dim=1)
    return torch.einsum("bchw,kc->bkhw", e, v) * torch.exp(-log_tau)


def pixel_losses(logits: torch.Tensor, target: torch.Tensor, column_mask: torch.Tensor | None = None):
    """Per-pixel cross-entropy (B,H,W) and the valid mask; target is a column index, -1 = ignore.

    column_mask (B,K) bool limits each image's softmax to its own dataset's labels."""
    if column_mask is not None:
        logits = logits.masked_fill(~column_mask[:, :, None, None], float("-inf"))
    valid = target >= 0
    loss = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
    return loss * valid, valid


def full_pixel_losses(low: torch.Tensor, target: torch.Tensor, column_mask: torch.Tensor | None = None):
    """The direct way: upsample all K score maps (B,K,h,w) to the target's size at once, then score.
    Kept for comparison (bench/bench_loss.py) and small label spaces."""
    logits = F.interpolate(low, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return pixel_losses(logits, target, column_mask)


def _bilinear_taps(n_in: int, n_out: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two source rows and weights F.interpolate(bilinear, align_corners=False) uses per output row."""
    src = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = (src - i0).float()
    return i0, i1, w1


def _band_loss(low, i0, i1, w1, target, mask, width: int):
    w1 = w1.view(1, 1, -1, 1)
    rows = low[:, :, i0] * (1 - w1) + low[:, :, i1] * w1  # rows of the upsampled maps, at low width
    logits = F.interpolate(rows, size=(rows.shape[2], width), mode="bilinear", align_corners=False)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, :, None, None], float("-inf"))
    return F.cross_entropy(logits, target.clamp(min=0), reduction="none")


class _BandedCrossEntropy(torch.autograd.Function):
    """Per-pixel cross-entropy of the upsampled scores, one band of output rows at a time. Backward
    recomputes each band from only the low-resolution rows it reads, so neither the crop-sized score
    maps nor a full-size gradient per band ever exist."""

    @staticmethod
    def forward(ctx, low, target, mask, band: int):
        H, W = target.shape[-2:]
        i0, i1, w1 = _bilinear_taps(low.shape[-2], H, low.device)
        parts = [_band_loss(low, i0[r0 : r0 + band], i1[r0 : r0 + band], w1[r0 : r0 + band], target[:, r0 : r0 + band],
                            mask, W) for r0 in range(0, H, band)]
        ctx.save_for_backward(low, target, mask)
        ctx.band = band
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad_loss):
        low, target, mask = ctx.saved_tensors
        H, W = target.shape[-2:]
        i0, i1, w1 = _bilinear_taps(low.shape[-2], H, low.device)
        grad_low = torch.zeros_like(low)
        for r0 in range(0, H, ctx.band):
            r1 = min(H, r0 + ctx.band)
            lo, hi = int(i0[r0]), int(i1[r1 - 1]) + 1  # the low rows this band reads (taps are monotonic)
            rows = low[:, :, lo:hi].detach().requires_grad_()
            with torch.enable_grad():
                loss = _band_loss(rows, i0[r0:r1] - lo, i1[r0:r1] - lo, w1[r0:r1], target[:, r0:r1], mask, W)
                (g,) = torch.autograd.grad(loss, rows, grad_loss[:, r0:r1])
            grad_low[:, :, lo:hi] += g
        return grad_low, None, None, None


# (label x pixel) scores per band. Each band costs a few kernel launches forward and an autograd pass
# backward, so small bands are launch-bound on a GPU: on an H200 (batch 2, 640x640, K 913, C 512,
# bf16) the loss took 0.59 s per step at 4M against 0.18 s for the SegFormer-B5 itself, and 0.05 s at
# 256M (peak 4.2 GiB; upsampling all maps at once: 0.047 s, 9.6 GiB). On CPU the band size hardly
# changes the time (bench/bench_loss.py) and 4M keeps memory low.
CPU_CHUNK = 4_000_000
GPU_CHUNK = 256_000_000


def default_chunk(device: torch.device | str) -> int:
    """Scores per band for this device: launch-bound GPUs get large bands, CPUs small ones."""
    return GPU_CHUNK if torch.device(device).type == "cuda" else CPU_CHUNK


def chunked_pixel_losses(low: torch.Tensor, target: torch.Tensor, column_mask: torch.Tensor | None = None,
                         chunk: int = 4_000_000):
    """Same result as full_pixel_losses, a band of output rows at a time (about `chunk` scores per
    band), each band recomputed in backward: peak memory no longer grows with K x H x W."""
    B, K = low.shape[:2]
    W = target.shape[-1]
    band = max(1, chunk // max(1, B * K * W))
    loss = _BandedCrossEntropy.apply(low, target, column_mask, band)
    valid = target >= 0
    return loss * valid, valid


def hd_loss(loss: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over all valid pixels of the images given."""
    return loss.sum() / valid.sum().clamp(min=1)


def ld_loss(loss: torch.Tensor, valid: torch.Tensor, quantile: float = 0.7) -> torch.Tensor:
    """Equations 4-5: L_LD = (1/M) sum_i w_i * loss_i, where w_i = 1 when pixel i's loss is at or below
    its own image's `quantile` percentile (mu, "the highest 30% loss value") and 0 otherwise, and M is
    the number of valid pixels of the images given, the same M as equation 3's. Dropped pixels still
    count in M, so L_LD is on L_HD's scale times the kept share, not the mean of the kept pixels."""
    kept_sum = (loss * 0).sum()  # zero, and keeps the graph connected (DDP) when nothing is kept
    for b in range(loss.shape[0]):
        values = loss[b][valid[b]]
        if values.numel() == 0:
            continue
        threshold = torch.quantile(values.detach().float(), quantile)  # linear interpolation, like numpy
        kept_sum = kept_sum + values[values <= threshold].sum()  # w_i of equation 4
    return kept_sum / valid.sum().clamp(min=1)


def wd_loss(emb: torch.Tensor, boxes: list[torch.Tensor], targets: list[torch.Tensor], head: nn.Module,
            spatial_scale: float, output_size: int = 7) -> torch.Tensor:
    """Mean over boxes of || normalise(pool(head(roi_align(emb, box)))) - normalise(target) ||_1.

    boxes: per image (n_i, 4) in input-image pixels; targets: per image (n_i, D)."""
    from torchvision.ops import roi_align

    if sum(len(b) for b in boxes) == 0:
        return emb.new_zeros(()).float()
    rois = [b.to(emb.device, torch.float32) for b in boxes]
    pooled = roi_align(emb.float(), rois, output_size=output_size, spatial_scale=spatial_scale,
                       sampling_ratio=2, aligned=True)
    vec = head(pooled).mean(dim=(2, 3))
    target = torch.cat([t.to(emb.device, torch.float32) for t in targets])
    if target.shape != vec.shape:
        raise ValueError(f"box targets have shape {tuple(target.shape)}, the box head gives {tuple(vec.shape)}")
    return (F.normalize(vec, dim=1) - F.normalize(target, dim=1)).abs().sum(dim=1).mean()


class SentenceLoss(nn.Module):
    """Holds the learnable temperature, the box head and the label vectors of the training label space."""

    def __init__(self, vectors, embed_dim: int, box_dim: int | None = None, tau: float = 0.07,
                 quantile: float = 0.7, roi_size: int = 7, weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 chunk: int | None = 4_000_000):
        super().__init__()
        self.chunk = chunk  # None: upsample all score maps at once (full_pixel_losses)
        self.register_buffer("vectors", torch.as_tensor(vectors, dtype=torch.float32), persistent=False)
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))
        self.box_head = nn.Conv2d(embed_dim, box_dim or embed_dim, kernel_size=1)
        self.quantile, self.roi_size, self.weights = quantile, roi_size, weights

    def forward(self, emb: torch.Tensor, batch: dict, columns: list[torch.Tensor],
                column_mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """emb (B,C,h,w) from the network; batch from the stream; columns[i] maps sample i's class
        index to a column of self.vectors. Returns each loss and their weighted sum ('total')."""
        target = batch["target"].to(emb.device)
        supervision = batch["supervision"].to(emb.device)
        W = target.shape[-1]
        out: dict[str, torch.Tensor] = {}
        total = emb.new_zeros(()).float()
        pixel_kinds = [(DENSE, "hd"), (COARSE, "ld")]
        if any(bool((supervision == code).any()) for code, _ in pixel_kinds):
            # Scores at the network's resolution, then upsampled (a band of rows at a time unless chunk is None).
            low = pixel_logits(emb, self.vectors, self.log_tau)
            col_target = torch.full_like(target, -1)
            for i, cols in enumerate(columns):
                if supervision[i] != BOX:
                    t = target[i]
                    if t.numel() and int(t.max()) >= len(cols):
                        raise BadInput(f"sample {batch['keys'][i]}: class index {int(t.max())} but "
                                         f"{batch['datasets'][i]} has {len(cols)} classes")
                    # a held-out class has column -1: its pixels are ignored here too
                    col_target[i] = torch.where(t >= 0, cols.to(t.device)[t.clamp(min=0)], -1)
            if self.chunk is None:
                loss, valid = full_pixel_losses(low, col_target, column_mask)
            else:
                loss, valid = chunked_pixel_losses(low, col_target, column_mask, self.chunk)
            for code, name in pixel_kinds:
                sel = supervision == code
                if sel.any():
                    value = hd_loss(loss[sel], valid[sel]) if name == "hd" else ld_loss(loss[sel], valid[sel], self.quantile)
                    out[name] = value
                    total = total + self.weights[code] * value
        box_idx = [i for i in range(len(columns)) if supervision[i] == BOX]
        if box_idx:
            boxes, targets = [], []
            for i in range(len(columns)):
                b = batch["boxes"][i] if i in box_idx else torch.zeros(0, 4)
                boxes.append(b)
                if i in box_idx:
                    t = batch["box_targets"][i]
                    if t is None:  # no image embedding shipped: distil towards the class's text embedding
                        cls = batch["box_classes"][i].to(self.vectors.device)
                        col = columns[i].to(self.vectors.device)[cls]
                        if (col < 0).any():
                            raise ValueError(f"sample {batch['keys'][i]}: a box of a held-out class reached the "
                                             "loss (the stream drops them)")
                        t = self.vectors[col]
                    targets.append(t)
            value = wd_loss(emb, boxes, targets, self.box_head, emb.shape[-1] / W, self.roi_size)
            out["wd"] = value
            total = total + self.weights[BOX] * value
        out["total"] = total
        return out
