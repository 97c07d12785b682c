"""Networks that output one C-dimensional embedding per pixel (at 1/4 of the input resolution).

- `segformer-b5`: transformers' SegFormer, configured locally as B5, its decode head giving C channels.
- `hrnet-w48`: HRNetV2-W48 as the paper uses it: timm's HRNet-W48 branch outputs (48/96/192/384
  channels at 1/4..1/32, `feature_location=''`, not the classification head's "incre" features),
  upsampled to 1/4, concatenated (720 channels), a 1x1 conv-BN-ReLU of the same width, and a 1x1 head.
- `resnet18`: timm ResNet-18 features with the same head (CPU-friendly with a low width).
- `tiny`: four strided convs, for tests on CPU.
Weights come only from a local path (no hub downloads).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import BadInput, NotFound

MODELS = ("segformer-b5", "hrnet-w48", "resnet18", "tiny")

# SegFormer-B5 (Xie et al. 2021, table 6): mix-transformer depths and widths, decoder width 768.
SEGFORMER_B5 = {"depths": [3, 6, 40, 3], "hidden_sizes": [64, 128, 320, 512], "num_attention_heads": [1, 2, 5, 8],
                "sr_ratios": [8, 4, 2, 1], "mlp_ratios": [4, 4, 4, 4], "decoder_hidden_size": 768}


class TinyNet(nn.Module):
    def __init__(self, dim: int, width: int = 32):
        super().__init__()

        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(3, width, 2), block(width, width, 1), block(width, width, 2),
                                  block(width, width, 1))
        self.head = nn.Conv2d(width, dim, 1)

    def forward(self, x):
        return self.head(self.body(x))


class FeatureFusion(nn.Module):
    """A timm features_only backbone; every level resized to the finest used one, concatenated, 1x1 head."""

    def __init__(self, backbone: nn.Module, dim: int, hidden: int | None = 256, first_level: int = 1):
        super().__init__()
        self.backbone, self.first_level = backbone, first_level
        channels = sum(backbone.feature_info.channels()[first_level:])
        hidden = hidden or channels
        self.fuse = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU(inplace=True))
        self.head = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        feats = self.backbone(x)[self.first_level :]
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        return self.head(self.fuse(torch.cat(feats, dim=1)))


class SegformerEmbed(nn.Module):
    def __init__(self, dim: int, weights: str | None = None):
        super().__init__()
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        if weights and Path(weights).is_dir():  # a saved transformers model folder: its head is replaced
            self.net = SegformerForSemanticSegmentation.from_pretrained(
                weights, num_labels=dim, ignore_mismatched_sizes=True, local_files_only=True)
        else:
            self.net = SegformerForSemanticSegmentation(SegformerConfig(num_labels=dim, **SEGFORMER_B5))
            if weights:
                _load_partial(self.net.segformer, weights)
        _mit_layer_norm_eps(self.net)
        # Checkpoints may use transformers 4 or 5 parameter names: loading respells them to ours.
        from trainer.model.segformer_keys import spelling

        self.spelling = spelling(self.net.state_dict().keys())
        self._register_load_state_dict_pre_hook(self._respell)

    def _respell(self, state_dict, prefix, *_):
        from trainer.model.segformer_keys import to_v4, to_v5

        inner = prefix + "net."
        for key in [k for k in state_dict if k.startswith(inner)]:
            name = to_v4(key[len(inner):])
            name = to_v5(name) if self.spelling == "v5" else name
            if inner + name != key:
                state_dict[inner + name] = state_dict.pop(key)

    def forward(self, x):
        return self.net(pixel_values=x).logits


def _mit_layer_norm_eps(net: nn.Module) -> None:
    """MiT (the SegFormer encoder) uses eps 1e-6 in its block and stage layer norms, 1e-5 in the
    patch-embedding and key/value-reduction ones; transformers builds them all with 1e-5."""
    import re

    from trainer.model.segformer_keys import to_v4

    for name, module in net.named_modules():
        if isinstance(module, nn.LayerNorm):
            v4 = to_v4(name + ".")
            if re.search(r"\.layer_norm_[12]\.$", v4) or re.fullmatch(r"segformer\.encoder\.layer_norm\.\d\.", v4):
                module.eps = 1e-6


def _load_partial(module: nn.Module, path: str) -> None:
    """Load a backbone checkpoint (.pth/.pt/.safetensors); keys that do not fit are reported, not fatal."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{p}: pretrained weights file not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # a foreign pickle, or a damaged file
            raise BadInput(f"{p}: not a plain backbone weights file ({type(e).__name__}); to start from an "
                             f"ssiw run or checkpoint use `init:` instead of `weights:`") from e
        if isinstance(state, dict) and {"label_space", "config", "model"} <= set(state):
            raise BadInput(f"{p}: an ssiw checkpoint, not backbone weights; to start from an ssiw run or "
                           f"checkpoint use `init:` instead of `weights:`")
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise BadInput(f"{p}: no tensor matches the model's parameter names and shapes")
    module.load_state_dict(usable, strict=False)
    missing = len(own) - len(usable)
    if missing:
        print(f"[ssiw] {p.name}: loaded {len(usable)} tensors, {missing} model tensors left at initialisation")


def build_model(name: str, dim: int, weights: str | None = None, width: int = 32) -> nn.Module:
    """A network mapping images (B,3,H,W) to embeddings (B,dim,H/4,W/4)."""
    import timm

    if name == "tiny":
        return TinyNet(dim, width)
    if name == "segformer-b5":
        return SegformerEmbed(dim, weights)
    if name == "hrnet-w48":
        # out_indices 1..4: the four branch outputs (index 0 is the stride-2 stem)
        backbone = timm.create_model("hrnet_w48", features_only=True, pretrained=False, feature_location="",
                                     out_indices=(1, 2, 3, 4))
        if weights:
            _load_partial(backbone, weights)
        return FeatureFusion(backbone, dim, hidden=None, first_level=0)
    if name == "resnet18":
        backbone = timm.create_model("resnet18", features_only=True, pretrained=False)
        if weights:
            _load_partial(backbone, weights)
        return FeatureFusion(backbone, dim, hidden=max(width, 32))
    raise BadInput(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


class ProcessSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose batch statistics are summed over every process of the default group, on any
    device (torch's SyncBatchNorm refuses CPU tensors, so gloo runs could not sync without this).
    The all-reduce is autograd-aware, so gradients flow through the global mean and variance."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x):
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        n = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        stats = all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims), n]))
        c = x.shape[1]
        count = stats[-1]
        mean = stats[:c] / count
        var = (stats[c : 2 * c] / count - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (count / max(count - 1, 1)) * m)
                self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def convert_sync_batch_norm(module: nn.Module, device_type: str) -> nn.Module:
    """Every batch norm synchronised across processes: torch's SyncBatchNorm on GPUs, ours elsewhere."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, ProcessSyncBatchNorm):
        out = ProcessSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
        if module.track_running_stats:
            out.running_mean.copy_(module.running_mean)
            out.running_var.copy_(module.running_var)
            out.num_batches_tracked.copy_(module.num_batches_tracked)
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
