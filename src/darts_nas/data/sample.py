"""The bundled 1000-image CIFAR-10 sample: demos and tests run offline, with real images."""

from __future__ import annotations

import io
from importlib import resources

import numpy as np
import torch

from ..errors import DartsNasError
from .dataset import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, ImageDataset

SAMPLE_FILE = "cifar10_sample.npz"


def load_sample() -> ImageDataset:
    """The first 1000 CIFAR-10 test images, normalized with the CIFAR-10 training statistics."""
    resource = resources.files("darts_nas.data").joinpath(SAMPLE_FILE)
    try:
        raw = resource.read_bytes()  # through bytes: np.load needs a seekable file, a packaged resource may not be
        with np.load(io.BytesIO(raw)) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise DartsNasError(f"the bundled sample {resource} is missing or damaged ({e}); reinstall darts-nas") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, 32, 32) or labels.shape != images.shape[:1]:
        raise DartsNasError(f"the bundled sample {resource} has images {images.dtype} {list(images.shape)} and labels "
                            f"{list(labels.shape)}, expected uint8 [N, 3, 32, 32] and [N]; reinstall darts-nas")
    return ImageDataset(torch.from_numpy(np.array(images)), torch.from_numpy(labels.astype(np.int64)),
                        list(CIFAR10_CLASSES), CIFAR10_MEAN, CIFAR10_STD, "cifar10-sample")
