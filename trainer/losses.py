"""The paper's losses (equations 1-7): every class is a sentence embedding, and a pixel's score for
a class is the cosine similarity of the two, divided by a learnable temperature.

- L_HD (dense): cross-entropy over all valid pixels.
- L_LD (coarse): the same per-pixel loss, keeping per image only pixels at or below that image's
  q-th loss percentile (q = 0.7), since the noisiest pixels of a coarse mask are the likeliest wrong.
- L_WD (box): RoI-align the pixel embeddings over each box, a 1x1 conv, then the L1 distance
  between the normalised pooled vector and the normalised box target.
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


def hd_loss(loss: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over all valid pixels of the images given."""
    return loss.sum() / valid.sum().clamp(min=1)


def ld_loss(loss: torch.Tensor, valid: torch.Tensor, quantile: float = 0.7) -> torch.Tensor:
    """Mean over the pixels whose loss is at or below their own image's `quantile` percentile."""
    kept_sum = loss.new_zeros(())
    kept_n = 0
    for b in range(loss.shape[0]):
        values = loss[b][valid[b]]
        if values.numel() == 0:
            continue
        threshold = torch.quantile(values.detach(), quantile)  # linear interpolation, like numpy
        keep = values <= threshold
        kept_sum = kept_sum + values[keep].sum()
        kept_n += int(keep.sum())
    return kept_sum / max(kept_n, 1)


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
                 quantile: float = 0.7, roi_size: int = 7, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        super().__init__()
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
        H, W = target.shape[-2:]
        out: dict[str, torch.Tensor] = {}
        total = emb.new_zeros(()).float()
        pixel_kinds = [(DENSE, "hd"), (COARSE, "ld")]
        if any(bool((supervision == code).any()) for code, _ in pixel_kinds):
            # Scores at the network's resolution, then upsampled: K label maps are far cheaper to
            # upsample (and backpropagate) than C embedding channels, and the argmax is the same shape.
            low = pixel_logits(emb, self.vectors, self.log_tau)
            logits = F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)
            col_target = torch.full_like(target, -1)
            for i, cols in enumerate(columns):
                if supervision[i] != BOX:
                    t = target[i]
                    if t.numel() and int(t.max()) >= len(cols):
                        raise BadInput(f"sample {batch['keys'][i]}: class index {int(t.max())} but "
                                         f"{batch['datasets'][i]} has {len(cols)} classes")
                    col_target[i] = torch.where(t >= 0, cols.to(t.device)[t.clamp(min=0)], -1)
            loss, valid = pixel_losses(logits, col_target, column_mask)
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
                        t = self.vectors[columns[i].to(self.vectors.device)[cls]]
                    targets.append(t)
            value = wd_loss(emb, boxes, targets, self.box_head, emb.shape[-1] / W, self.roi_size)
            out["wd"] = value
            total = total + self.weights[BOX] * value
        out["total"] = total
        return out
