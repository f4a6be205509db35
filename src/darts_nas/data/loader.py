"""Batches straight from device memory: the selected images move to the device once, then each epoch is a
device-side permutation plus on-device augmentation, with no worker processes and no host round trips."""

from __future__ import annotations

import math
from typing import Iterator

import torch

from ..errors import DartsNasError
from .augment import augment as augment_batch, normalize
from .dataset import ImageDataset


def search_split(n: int, train_portion: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS's search split, in order: the first floor(n * portion) examples train the weights, the rest the alphas."""
    if not 0.0 <= train_portion <= 1.0:
        raise DartsNasError(f"train portion must be between 0 and 1, got {train_portion}")
    k = math.floor(n * train_portion)
    return torch.arange(k), torch.arange(k, n)


def read_split_file(path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed search split from a file: NAS-Bench-201's ``cifar-split.txt`` (JSON ``{"train": ["int", [...]],
    "valid": ["int", [...]]}``) or plain JSON lists of indices under "train" and "valid". Indices refer to the
    training set in its official order; only those below `n` are kept (a --limit run uses the split's share of
    its first n images)."""
    import json
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        raise DartsNasError(f"cannot read the split file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise DartsNasError(f"{path}: not a JSON split file ({e})") from None
    parts = []
    for key in ("train", "valid"):
        v = d.get(key) if isinstance(d, dict) else None
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            v = v[1]  # NAS-Bench-201's ["int", [...]] form
        try:
            idx = torch.tensor([int(i) for i in v], dtype=torch.long)
        except (TypeError, ValueError):
            raise DartsNasError(f"{path}: expected a list of integer indices under {key!r}") from None
        parts.append(idx)
    train, valid = parts
    if len(set(train.tolist()) & set(valid.tolist())):
        raise DartsNasError(f"{path}: the train and valid indices overlap")
    if min(train.min().item() if len(train) else 0, valid.min().item() if len(valid) else 0) < 0:
        raise DartsNasError(f"{path}: negative index")
    return train[train < n], valid[valid < n]


class DeviceLoader:
    """The examples `indices` of `dataset` on `device`, served as shuffled augmented batches or in-order eval ones."""

    def __init__(self, dataset: ImageDataset, indices, batch_size: int, device, augment: bool = True,
                 crop_padding: int = 4, flip: bool = True, cutout: int = 0, dtype: torch.dtype = torch.float32):
        if batch_size < 1:
            raise DartsNasError(f"batch size must be at least 1, got {batch_size}")
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(dataset)):
            raise ValueError(f"indices must lie in 0..{len(dataset) - 1}")
        self.device = torch.device(device)
        self.images = dataset.images[idx].to(self.device)
        self.labels = dataset.labels[idx].to(self.device)
        self.batch_size = batch_size
        self.augment = augment
        self.crop_padding, self.flip, self.cutout = crop_padding, flip, cutout
        self.dtype = dtype
        # Normalization constants live on the device too, so no batch copies them over again.
        self.mean = torch.tensor(dataset.mean, dtype=dtype, device=self.device)
        self.std = torch.tensor(dataset.std, dtype=dtype, device=self.device)

    def __len__(self) -> int:
        return self.images.shape[0]

    def steps_per_epoch(self) -> int:
        """Full batches only (drop_last), so every step has the same shapes."""
        return len(self) // self.batch_size

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled pass; the generator (on this loader's device) fixes the order and augmentation."""
        order = torch.randperm(len(self), generator=generator, device=self.device)
        bs = self.batch_size
        for step in range(self.steps_per_epoch()):
            take = order[step * bs:(step + 1) * bs]
            x, y = self.images[take], self.labels[take]
            if self.augment:
                x = augment_batch(x, self.mean, self.std, generator, crop_padding=self.crop_padding, flip=self.flip,
                                  cutout=self.cutout, dtype=self.dtype)
            else:
                x = normalize(x, self.mean, self.std, self.dtype)
            yield x, y

    def eval_batches(self, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every example once, in order, normalized but not augmented, the last batch possibly partial."""
        bs = batch_size or self.batch_size
        for start in range(0, len(self), bs):
            yield normalize(self.images[start:start + bs], self.mean, self.std, self.dtype), \
                self.labels[start:start + bs]
