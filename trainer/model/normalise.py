"""Image normalisation shared by training, inference and the GPU benchmark: uint8 RGB batches to the
ImageNet mean and standard deviation the backbones were pretrained with."""

from __future__ import annotations

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalise_images(images, device):
    import torch

    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    return (images.to(device, non_blocking=True).float() - mean) / std
