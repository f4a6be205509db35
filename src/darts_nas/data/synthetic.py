"""A small, learnable stand-in for a real dataset: benchmarks and smoke tests run without downloading anything."""

from __future__ import annotations

import math

import torch

from ..errors import DartsNasError
from .dataset import ImageDataset, channel_stats


def synthetic_dataset(n: int = 1024, num_classes: int = 10, image_size: int = 32, channels: int = 3, seed: int = 0,
                      train: bool = True) -> ImageDataset:
    """Images = a per-class template (own colour plus own oriented stripes) + per-image noise, deterministic in seed.

    The templates depend only on `seed`, the samples on (`seed`, `train`), so the train and test splits are distinct
    draws from the same distribution. Colour alone separates the classes only roughly, so the network has to use
    the spatial pattern too, which keeps it a (small) test of convolution rather than of a linear colour classifier.
    """
    for label, value in (("n", n), ("num_classes", num_classes), ("image_size", image_size), ("channels", channels)):
        if not isinstance(value, int) or value < 1:
            raise DartsNasError(f"synthetic dataset: {label} must be a positive integer, got {value!r}")

    g = torch.Generator().manual_seed(seed)
    colour = 0.25 + 0.5 * torch.rand(num_classes, channels, 1, 1, generator=g)
    angle = torch.rand(num_classes, generator=g) * math.pi
    freq = 1.0 + 2.0 * torch.rand(num_classes, generator=g)  # 1..3 stripes across the image
    phase = torch.rand(num_classes, generator=g) * 2 * math.pi
    coords = torch.arange(image_size, dtype=torch.float32) / image_size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    along = (xx[None] * angle.cos()[:, None, None] + yy[None] * angle.sin()[:, None, None])
    stripes = torch.sin(2 * math.pi * freq[:, None, None] * along + phase[:, None, None])  # [K, H, W]
    templates = colour + 0.2 * stripes[:, None]  # [K, C, H, W]

    split_seeds = torch.randint(0, 2**62, (2,), generator=g)  # one independent stream per split
    g_sample = torch.Generator().manual_seed(int(split_seeds[0 if train else 1]))
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g_sample)]
    noise = 0.12 * torch.randn(n, channels, image_size, image_size, generator=g_sample)
    images = (templates[labels] + noise).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    mean, std = channel_stats(images)
    return ImageDataset(images, labels, [f"class_{k}" for k in range(num_classes)], mean, std, "synthetic")
