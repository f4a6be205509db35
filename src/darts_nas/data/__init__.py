"""Datasets (CIFAR-10/100, image folders, synthetic, the bundled sample) as whole uint8 tensors, and the on-device
loader and augmentation the search uses."""

from __future__ import annotations

from ..errors import DartsNasError
from .augment import augment, normalize
from .cifar import load_cifar
from .dataset import ImageDataset
from .folder import is_image_folder, load_image_folder
from .loader import DeviceLoader, read_split_file, search_split
from .sample import load_sample
from .synthetic import synthetic_dataset

DATASETS = ("cifar10", "cifar100", "folder", "synthetic", "sample")

__all__ = ["DATASETS", "DeviceLoader", "ImageDataset", "augment", "is_image_folder", "load_cifar", "load_dataset",
           "load_image_folder", "load_sample", "normalize", "read_split_file", "search_split", "synthetic_dataset"]


def load_dataset(name: str, root=None, train: bool = True, download: bool = True, image_size: int = 32,
                 synthetic_size: int = 1024, num_classes: int = 10, seed: int = 0) -> ImageDataset:
    """One entry point for every dataset kind; arguments that a kind does not use are ignored.

    CIFAR reads `root` (default ./data); "folder" needs `root`; "synthetic" uses synthetic_size, num_classes,
    image_size and seed; "sample" (CIFAR-10 test images) ignores everything.
    """
    if name in ("cifar10", "cifar100"):
        return load_cifar(root if root is not None else "./data", name, train=train, download=download)
    if name == "folder":
        if root is None:
            raise DartsNasError("the folder dataset needs a root directory laid out as root/<class>/<image>")
        return load_image_folder(root, image_size=image_size)
    if name == "synthetic":
        return synthetic_dataset(n=synthetic_size, num_classes=num_classes, image_size=image_size, seed=seed,
                                 train=train)
    if name == "sample":
        return load_sample()
    raise DartsNasError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
