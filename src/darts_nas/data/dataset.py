"""The in-memory dataset every loader returns: whole uint8 image tensors, so a search can move them to the device
once and do all batching and augmentation there."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import DartsNasError

CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class ImageDataset:
    """Images as uint8 [N, C, H, W] with int64 labels and the per-channel statistics used to normalize them."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DartsNasError(f"{self.name}: images must be uint8 [N, C, H, W], got {self.images.dtype} "
                                f"{list(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise DartsNasError(f"{self.name}: {self.images.shape[0]} images but labels of shape "
                                f"{list(self.labels.shape)}")
        self.images = self.images.contiguous()
        self.labels = self.labels.to(torch.int64)
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    def __len__(self) -> int:
        return self.images.shape[0]

    def reduced(self, n: int, seed: int, shuffled: bool) -> "ImageDataset":
        """The examples of :func:`subset_indices` (itself when that is all of them, in order: no copy)."""
        if not n and not shuffled:
            return self
        return self.subset(subset_indices(len(self), n, seed, shuffled))

    def subset(self, indices) -> "ImageDataset":
        """The examples at `indices`, with the same classes and normalization (so subsets stay comparable)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(self.images[idx].contiguous(), self.labels[idx].clone(), list(self.classes),
                            self.mean, self.std, self.name, list(self.notes))


def subset_indices(n_total: int, n: int, seed: int, shuffled: bool) -> torch.Tensor:
    """Indices of a reduced run's examples: the first n (0: all), or for class-sorted sources (image folders) a
    seeded permutation's first n, so that every class stays in and an in-order split keeps every class."""
    if shuffled:
        order = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    else:
        order = torch.arange(n_total)
    return order[:n] if n else order


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of images/255, accumulated in float64 chunks to bound memory."""
    n, c = images.shape[:2]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].to(torch.float64).div_(255.0).transpose(0, 1).reshape(c, -1)
        total += x.sum(1)
        total_sq += (x * x).sum(1)
    count = max(images.numel() // max(c, 1), 1)
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-6)  # a constant channel would otherwise divide by zero when normalizing
    return tuple(mean.tolist()), tuple(std.tolist())
