"""The SSIW authors' single-scale inference, step for step, for runs imported with `ssiw import-ssiw`.

1. Resize so the short edge is `short_edge` (720 in their test), the long edge `round(...)` as theirs,
   bilinear with half-pixel centres (OpenCV's INTER_LINEAR; OpenCV itself is used when installed).
2. Pad to a multiple of 32 with the ImageNet mean colour rounded to 8 bits (124, 116, 104), half the
   padding before and the odd pixel after (bottom / right). Their target size is
   ceil((n - 1) / 32) * 32, so a side of 32k + 1 pixels is left unpadded; we keep that quirk.
3. Normalise with the ImageNet mean and std, run the network: 512-d embeddings at 1/4 resolution.
4. Upsample the embeddings bilinearly with align_corners=True to the padded size, then the cosine
   with every label embedding (both L2-normalised), softmax of 100 x cosine over the labels.
5. Crop the padding, resize the probabilities to the original size (bilinear, half-pixel), argmax.
   Optional confidence cut: a pixel whose top probability is not above it becomes 255 (theirs: 0.5).

Steps 4-5 are linear maps along rows and columns, so they run as matrix products over bands of output
rows: memory stays a few hundred MB whatever the image size, instead of 512 x H x W floats at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.shard_format import ignore_value
from trainer.model.normalise import MEAN, normalise_images

# OpenCV's copyMakeBorder rounds the float mean colour they pass to the uint8 image's 8 bits.
PAD_COLOUR = tuple(round(m * 255) for m in MEAN)  # (124, 116, 104)
LOGIT_SCALE = 100.0
BAND_ROWS = 64  # output rows per band in steps 4-5


@dataclass(frozen=True)
class Geometry:
    height: int  # original image
    width: int
    scaled_h: int  # after the short-edge resize
    scaled_w: int
    top: int  # padding before / after
    bottom: int
    left: int
    right: int

    @property
    def padded_h(self) -> int:
        return self.scaled_h + self.top + self.bottom

    @property
    def padded_w(self) -> int:
        return self.scaled_w + self.left + self.right


def geometry(height: int, width: int, short_edge: int = 720) -> Geometry:
    if height > width:
        sh, sw = round(short_edge / float(width) * height), short_edge
    else:
        sh, sw = short_edge, round(short_edge / float(height) * width)

    def pad(n: int) -> tuple[int, int]:
        total = max(int(math.ceil((n - 1) / 32) * 32) - n, 0)
        return total // 2, total - total // 2

    (top, bottom), (left, right) = pad(sh), pad(sw)
    return Geometry(height, width, sh, sw, top, bottom, left, right)


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 HxWx3 resized like OpenCV's INTER_LINEAR (half-pixel centres, no antialiasing)."""
    try:
        import cv2

        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    except ImportError:
        pass
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def pad_image(image: np.ndarray, g: Geometry) -> np.ndarray:
    out = np.empty((g.padded_h, g.padded_w, 3), dtype=np.uint8)
    out[...] = np.array(PAD_COLOUR, dtype=np.uint8)
    out[g.top : g.top + g.scaled_h, g.left : g.left + g.scaled_w] = image
    return out


def interp_matrix(n_out: int, n_in: int, align_corners: bool):
    """(n_out, n_in) weights of 1-D linear interpolation, as torch's bilinear computes them."""
    import torch

    i = torch.arange(n_out, dtype=torch.float64)
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros_like(i)
    else:
        src = ((i + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), i0] += 1 - frac
    m[torch.arange(n_out), i1] += frac
    return m.float()


def labels_from_embeddings(emb, vectors, g: Geometry, cut: float | None = None):
    """emb (C, h4, w4) for the padded image, vectors (K, C) -> labels (H, W) int64 and top probability."""
    import torch
    import torch.nn.functional as F

    dev = emb.device
    emb = emb.float()
    v = F.normalize(torch.as_tensor(vectors, dtype=torch.float32, device=dev), dim=1)
    _, h4, w4 = emb.shape
    rows1 = interp_matrix(g.padded_h, h4, True)[g.top : g.top + g.scaled_h].to(dev)  # (sh, h4)
    cols1 = interp_matrix(g.padded_w, w4, True)[g.left : g.left + g.scaled_w].to(dev)  # (sw, w4)
    rows2 = interp_matrix(g.height, g.scaled_h, False).to(dev)  # (H, sh)
    cols2 = interp_matrix(g.width, g.scaled_w, False).to(dev)  # (W, sw)
    labels = torch.empty(g.height, g.width, dtype=torch.long)
    top = torch.empty(g.height, g.width, dtype=torch.float32)
    for r0 in range(0, g.height, BAND_ROWS):
        r1 = min(r0 + BAND_ROWS, g.height)
        used = rows2[r0:r1].abs().sum(0).nonzero()[:, 0]
        a, b = int(used.min()), int(used.max()) + 1  # scaled rows this band reads
        band = torch.einsum("ry,cyx->crx", rows1[a:b], emb)
        band = torch.einsum("crx,sx->crs", band, cols1)  # (C, b-a, sw): step 4's upsampled embeddings
        cos = torch.einsum("crs,kc->krs", F.normalize(band, dim=0), v)
        prob = (cos * LOGIT_SCALE).softmax(0)
        out = torch.einsum("Rr,krs->kRs", rows2[r0:r1, a:b], prob)
        out = torch.einsum("kRs,Ws->kRW", out, cols2)  # (K, r1-r0, W)
        best, arg = out.max(0)
        labels[r0:r1], top[r0:r1] = arg.cpu(), best.cpu()
    labels = labels.numpy()
    top = top.numpy()
    if cut is not None:
        labels = np.where(top > cut, labels, ignore_value(len(v)))
    return labels, top


def authors_predict(net, image: np.ndarray, vectors: np.ndarray, short_edge: int = 720, cut: float | None = None,
                    device=None):
    """Labels (H, W) and top probability for an HxWx3 uint8 image, as the authors' single-scale test."""
    import torch

    g = geometry(image.shape[0], image.shape[1], short_edge)
    padded = pad_image(resize_bilinear(image, g.scaled_w, g.scaled_h), g)
    dev = device or next(net.parameters()).device
    x = normalise_images(torch.from_numpy(padded).permute(2, 0, 1)[None], dev)
    with torch.no_grad():
        emb = net(x)[0]
        return labels_from_embeddings(emb, vectors, g, cut)


# The multi-scale test of `ssiw eval --protocol authors`, scored in 640-px windows (the authors' window,
# their SegFormer training crop). The window scheme is MSeg's evaluation's: at each short edge the resized
# image is padded with the mean colour, centred, up to at least one window, scored window by window
# (stride 2/3 of the window, the last window flush with the edge), the probabilities averaged where
# windows overlap, the padding cropped, and the result resized back to the original size. Each window is
# scored as their single-scale test scores an image (steps 3-4 above). The authors' own multi-scale code
# was not available here to compare against; their single-scale test (authors_predict) is exact.
WINDOW = 640
STRIDE_RATE = 2 / 3


def window_starts(n: int, window: int, stride_rate: float = STRIDE_RATE) -> list[int]:
    """Start of each window along a side of n >= window pixels; the last ends at n."""
    stride = math.ceil(window * stride_rate)
    count = math.ceil(max(n - window, 0) / stride) + 1
    return [min(i * stride + window, n) - window for i in range(count)]


def _window_probs(net, window_image: np.ndarray, v, dev):
    """softmax(100 x cos) over labels (K, h, w) for one window, embeddings upsampled align_corners=True."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(window_image).permute(2, 0, 1)[None]
    emb = net(normalise_images(x, dev))
    up = F.interpolate(emb.float(), size=x.shape[-2:], mode="bilinear", align_corners=True)[0]
    return (torch.einsum("chw,kc->khw", F.normalize(up, dim=0), v) * LOGIT_SCALE).softmax(0)


def authors_window_probs(net, image: np.ndarray, vectors: np.ndarray, short_edge: int, window: int = WINDOW,
                         flip: bool = False, device=None):
    """Label probabilities (K, H, W) at one short edge, scored in `window`-px windows as described above."""
    import torch
    import torch.nn.functional as F

    dev = device or next(net.parameters()).device
    v = F.normalize(torch.as_tensor(vectors, dtype=torch.float32, device=dev), dim=1)
    g = geometry(image.shape[0], image.shape[1], short_edge)
    scaled = resize_bilinear(image, g.scaled_w, g.scaled_h)
    pad_h, pad_w = max(window - g.scaled_h, 0), max(window - g.scaled_w, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = np.empty((g.scaled_h + pad_h, g.scaled_w + pad_w, 3), dtype=np.uint8)
    padded[...] = np.array(PAD_COLOUR, dtype=np.uint8)
    padded[top : top + g.scaled_h, left : left + g.scaled_w] = scaled
    H, W = padded.shape[:2]
    total = torch.zeros(len(v), H, W, device=dev)
    count = torch.zeros(1, H, W, device=dev)
    with torch.no_grad():
        for y0 in window_starts(H, window):
            for x0 in window_starts(W, window):
                crop = np.ascontiguousarray(padded[y0 : y0 + window, x0 : x0 + window])
                prob = _window_probs(net, crop, v, dev)
                if flip:
                    prob = (prob + _window_probs(net, np.ascontiguousarray(crop[:, ::-1]), v, dev).flip(-1)) / 2
                total[:, y0 : y0 + window, x0 : x0 + window] += prob
                count[:, y0 : y0 + window, x0 : x0 + window] += 1
        prob = (total / count)[:, top : top + g.scaled_h, left : left + g.scaled_w]
        prob = F.interpolate(prob[None], size=(g.height, g.width), mode="bilinear", align_corners=False)[0]
    return prob.cpu().numpy()


def authors_multi_scale(net, image: np.ndarray, vectors: np.ndarray, scales, window: int = WINDOW,
                        flip: bool = False, device=None) -> np.ndarray:
    """Mean of authors_window_probs over the short edges `scales` (theirs: 480, 720, 1080)."""
    probs = [authors_window_probs(net, image, vectors, s, window, flip, device) for s in scales]
    return np.mean(probs, axis=0)
