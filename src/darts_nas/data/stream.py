"""Large image folders (ImageNet layout ``root/train/<wnid>/*.JPEG``, ``root/val/<wnid>/*.JPEG``) streamed from disk.

Too big to hold in memory, so worker processes decode each image with PIL and do the geometric part of the
augmentation there (random-resized-crop to the output size in training; resize the shorter side then centre-crop
for evaluation), producing same-size uint8 tensors. The photometric part (flip, colour jitter, normalization) runs
batched on the device. Every random number derives from the epoch's generator, so a resumed run sees the same
crops; worker scheduling cannot change them (each image's crop is seeded by its position in the epoch).
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from .. import distributed
from ..errors import DartsNasError
from .augment import color_jitter, flip_batch
from .folder import open_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0),
                            ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a crop covering a uniform fraction `scale` of the area with a log-uniform aspect ratio
    (Inception-style; up to 10 tries, then the largest centred crop within the ratio range)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def _to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


class DecodedFolder(torch.utils.data.Dataset):
    """Items are (index, seed) pairs: seed None means the evaluation transform, else a training crop drawn from
    numpy's generator seeded with `seed`."""

    def __init__(self, files, labels, image_size: int, resize_size: int):
        self.files, self.labels = list(files), list(labels)
        self.image_size, self.resize_size = image_size, resize_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item):
        index, seed = item
        im = open_rgb(self.files[index])
        s = self.image_size
        if seed is None:
            w, h = im.size
            k = self.resize_size / min(w, h)
            im = im.resize((max(s, round(w * k)), max(s, round(h * k))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        else:
            left, top, w, h = random_resized_crop_box(*im.size, np.random.default_rng(seed))
            im = im.resize((s, s), Image.BILINEAR, box=(left, top, left + w, top + h))
        return _to_tensor(im), self.labels[index]


class StreamingLoader:
    """Same interface as :class:`DeviceLoader` (``epoch(generator)``, ``eval_batches()``, ``steps_per_epoch()``,
    ``len()``) for folders streamed from disk by `workers` processes. ``sharded=True``: `batch_size` is the global
    batch and each rank reads its shard of every global batch (crops are per image, so they are those of one
    process; the flips and colour draws of a shard come from the epoch's generator, the same on every rank) and
    its contiguous part of the evaluation images."""

    def __init__(self, files, labels, batch_size: int, device, image_size: int = 224, resize_size: int | None = None,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, flip: bool = True, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0, workers: int = 4,
                 dtype: torch.dtype = torch.float32, sharded: bool = False):
        if batch_size < 1:
            raise DartsNasError(f"batch size must be at least 1, got {batch_size}")
        self.sharded = sharded
        self.shard_batch = distributed.shard_size(batch_size) if sharded else batch_size
        self.device = torch.device(device)
        resize_size = resize_size or round(image_size * 256 / 224)
        self.data = DecodedFolder(files, labels, image_size, resize_size)
        self.batch_size, self.workers, self.dtype = batch_size, workers, dtype
        self.flip = flip
        self.jitter = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        self.mean = torch.tensor(mean, dtype=dtype, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=dtype, device=self.device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.data)

    def steps_per_epoch(self) -> int:
        return len(self) // self.batch_size

    def _batches(self, items, drop_last: bool, batch_size: int):
        loader = torch.utils.data.DataLoader(self.data, batch_size=batch_size, sampler=items, drop_last=drop_last,
                                             num_workers=self.workers, pin_memory=self.device.type == "cuda",
                                             persistent_workers=False)
        try:
            for x, y in loader:
                yield (x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
        except DartsNasError as e:
            # From a worker process the message carries the worker's traceback: keep only the error itself.
            last = str(e).strip().splitlines()[-1]
            raise DartsNasError(last.split("DartsNasError: ", 1)[-1]) from None

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Two reads from the device per epoch (the order and a base seed), none per step.
        order = torch.randperm(len(self), generator=generator, device=generator.device).cpu().tolist()
        base = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        items = [(i, base + pos) for pos, i in enumerate(order)]
        bs, part = self.batch_size, self.shard_batch
        if self.sharded:
            lo = distributed.rank() * part
            items = [item for s in range(self.steps_per_epoch()) for item in items[s * bs + lo:s * bs + lo + part]]
        for x, y in self._batches(items, True, part):
            x = x.to(self.dtype) / 255.0
            if self.flip:
                x = flip_batch(x, generator)
            x = color_jitter(x, generator, **self.jitter)
            yield self._normalize(x), y

    def eval_batches(self, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        lo, hi = distributed.part_range(len(self)) if self.sharded else (0, len(self))
        items = [(i, None) for i in range(lo, hi)]
        for x, y in self._batches(items, False, batch_size or self.shard_batch):
            yield self._normalize(x.to(self.dtype) / 255.0), y
