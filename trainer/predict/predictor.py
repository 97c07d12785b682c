"""Inference: label each pixel by its most similar label embedding, at one or several scales,
optionally with a sliding window. Shared by `ssiw eval` and `ssiw segment`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.model.checkpoint import RunCheckpoint, RunSettings
from trainer.model.label_space import LabelSpace


@dataclass
class Predictor:
    net: object
    log_tau: float
    device: object
    settings: RunSettings  # model, width, short edge, crop and inference procedure of the run
    label_space: LabelSpace

    @property
    def encoder(self) -> str | None:
        """The training table's text encoder: new label texts must be embedded with it."""
        return self.label_space.encoder

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None) -> Predictor:
        import torch

        from trainer.model.networks import build_model

        ckpt = RunCheckpoint.load(path)
        run = ckpt.settings
        if run.model == "segformer-b5":  # every tensor comes from the file: skip the slow random init
            with torch.device("meta"):
                net = build_model(run.model, ckpt.dim, None, run.width)
            net.load_state_dict(ckpt.network, assign=True)
        else:
            net = build_model(run.model, ckpt.dim, None, run.width)
            net.load_state_dict(ckpt.network)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        net.to(dev).eval()
        return cls(net, ckpt.log_tau, dev, run, ckpt.label_space)

    def vectors_for(self, dataset: str, table=None) -> np.ndarray:
        """The dataset's label vectors: from the table when given, else from the training label space."""
        return self.label_space.vectors_for(dataset, table)

    def scores(self, image: np.ndarray, vectors: np.ndarray, scales: list[int], window: tuple[int, int] | None = None,
               flip: bool = False) -> np.ndarray:
        """Mean softmax over scales (and flips): (K, H, W) float32 for an HxWx3 uint8 image."""
        import torch
        import torch.nn.functional as F
        from PIL import Image

        from trainer.model.normalise import normalise_images

        h, w = image.shape[:2]
        v = torch.from_numpy(np.asarray(vectors, dtype=np.float32)).to(self.device)
        tau = torch.tensor(self.log_tau, device=self.device)
        total = torch.zeros(len(v), h, w, device=self.device)
        pil = Image.fromarray(image)
        n = 0
        with torch.no_grad():
            for s in scales:
                f = s / min(h, w)
                sw, sh = max(1, round(w * f)), max(1, round(h * f))
                x = torch.from_numpy(np.array(pil.resize((sw, sh), Image.BILINEAR))).permute(2, 0, 1)[None]
                x = normalise_images(x, self.device)
                for flipped in ([False, True] if flip else [False]):
                    xi = x.flip(-1) if flipped else x
                    logits = self._windowed(xi, v, tau, window)
                    if flipped:
                        logits = logits.flip(-1)
                    prob = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1)
                    total += prob[0]
                    n += 1
        return (total / n).cpu().numpy()

    def _windowed(self, x, v, tau, window):
        """Logits (1,K,h,w) at x's size: one pass, or overlapping windows averaged."""
        import torch
        import torch.nn.functional as F

        from trainer.losses import pixel_logits

        H, W = x.shape[-2:]

        def run(t):
            # As in training: label scores at the network's resolution, then upsampled.
            low = pixel_logits(self.net(t), v, tau)
            return F.interpolate(low, size=t.shape[-2:], mode="bilinear", align_corners=False)

        if window is None or (H <= window[0] and W <= window[1]):
            return run(x)
        wh, ww = min(window[0], H), min(window[1], W)
        sh, sw = max(1, wh * 2 // 3), max(1, ww * 2 // 3)
        ys = list(range(0, H - wh + 1, sh)) + ([H - wh] if (H - wh) % sh else [])
        xs = list(range(0, W - ww + 1, sw)) + ([W - ww] if (W - ww) % sw else [])
        out = torch.zeros(1, len(v), H, W, device=x.device)
        count = torch.zeros(1, 1, H, W, device=x.device)
        for y0 in ys:
            for x0 in xs:
                out[..., y0 : y0 + wh, x0 : x0 + ww] += run(x[..., y0 : y0 + wh, x0 : x0 + ww])
                count[..., y0 : y0 + wh, x0 : x0 + ww] += 1
        return out / count

    def predict(self, image, vectors, scales, window=None, flip=False) -> np.ndarray:
        return self.scores(image, vectors, scales, window, flip).argmax(0).astype(np.int64)
