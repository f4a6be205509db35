"""Batches straight from device memory: the selected images move to the device once, then each epoch is a
device-side permutation plus on-device augmentation, with no worker processes and no host round trips."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from .. import distributed
from ..errors import DartsNasError
from ..settings import SettingsGroup, setting
from .augment import augment as augment_batch, normalize
from .dataset import ImageDataset


@dataclass
class ImageSearchSettings(SettingsGroup):
    """A search's image data: where it comes from, its size, the fixed weights/alphas split, and the on-device
    augmentation of the batches."""

    POSITIVE = ("image_size", "synthetic_size")

    download: bool = setting(True, "download CIFAR from its official URL (checksum verified) when it is missing")
    image_size: int = setting(32, "image side for folder datasets (images are resized)")
    synthetic_size: int = setting(1024, "images in the synthetic dataset")
    split_file: str = setting("", "fixed weights/alphas split of the training set, e.g. NAS-Bench-201's "
                              "cifar-split.txt (replaces --train-portion)", space_setting=True)
    crop_padding: int = setting(4, "random-crop padding (0: no crop)")
    flip: bool = setting(True, "random horizontal flips")
    cutout: int = setting(0, "cutout square side (0: off; DARTS search uses none)")

    @classmethod
    def problems(cls, config) -> list[str]:
        if min(config.cutout, config.crop_padding) < 0:
            return ["--limit, --cutout, --crop-padding, --grad-clip and --arch-warmup-epochs cannot be negative"]
        return []


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
    """The examples `indices` of `dataset` on `device`, served as shuffled augmented batches or in-order eval ones.

    ``sharded=True`` (a distributed run): `batch_size` is the global batch; :meth:`epoch` yields this rank's equal
    shard of each global batch (the one seeded permutation and augmentation, so the ranks' shards together are
    exactly the single-process batch), and :meth:`eval_batches` this rank's contiguous part of the examples."""

    def __init__(self, dataset: ImageDataset, indices, batch_size: int, device, augment: bool = True,
                 crop_padding: int = 4, flip: bool = True, cutout: int = 0, dtype: torch.dtype = torch.float32,
                 sharded: bool = False):
        if batch_size < 1:
            raise DartsNasError(f"batch size must be at least 1, got {batch_size}")
        self.sharded = sharded
        self.shard_batch = distributed.shard_size(batch_size) if sharded else batch_size
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
        bs, part = self.batch_size, self.shard_batch
        lo = distributed.rank() * part if self.sharded else 0
        for step in range(self.steps_per_epoch()):
            take = order[step * bs + lo:step * bs + lo + part]
            x, y = self.images[take], self.labels[take]
            if self.augment:
                x = augment_batch(x, self.mean, self.std, generator, crop_padding=self.crop_padding, flip=self.flip,
                                  cutout=self.cutout, dtype=self.dtype, part=(lo, bs))
            else:
                x = normalize(x, self.mean, self.std, self.dtype)
            yield x, y

    def eval_batches(self, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every example once, in order, normalized but not augmented, the last batch possibly partial (sharded:
        this rank's contiguous part of the examples, in batches of the per-rank size)."""
        bs = batch_size or self.shard_batch
        lo, hi = distributed.part_range(len(self)) if self.sharded else (0, len(self))
        for start in range(lo, hi, bs):
            end = min(start + bs, hi)
            yield normalize(self.images[start:end], self.mean, self.std, self.dtype), self.labels[start:end]

    def batch_shards(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first `count` global batches in order, not augmented: this rank's shard of each when sharded (the
        batches of the Hessian eigenvalue estimate, whose products are averaged over the ranks)."""
        bs, part = self.batch_size, self.shard_batch
        lo = distributed.rank() * part if self.sharded else 0
        out = []
        for step in range(min(count, max(-(-len(self) // bs), 0))):
            start = step * bs + lo
            end = min(start + part, (step + 1) * bs, len(self))
            if end <= start:
                break
            out.append((normalize(self.images[start:end], self.mean, self.std, self.dtype), self.labels[start:end]))
        return out
