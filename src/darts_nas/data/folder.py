"""Any image classification set laid out as root/<class>/<image>: decoded once with PIL into one uint8 tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DartsNasError
from .dataset import ImageDataset, channel_stats

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})


def _class_dirs(root: Path) -> list[Path]:
    # Hidden folders (.ipynb_checkpoints, .git) are never classes.
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _image_files(directory: Path) -> list[Path]:
    return sorted((f for f in directory.iterdir()
                   if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS),
                  key=lambda f: f.name)


def is_image_folder(path) -> bool:
    """Whether `path` looks like root/<class>/<image>: a directory with a class folder holding at least one image."""
    root = Path(path).expanduser()
    try:
        return root.is_dir() and any(_image_files(d) for d in _class_dirs(root))
    except OSError:
        return False


def open_rgb(path: Path) -> Image.Image:
    """An image file as an RGB PIL image; an unreadable file is one DartsNasError naming it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DartsNasError(f"cannot read image {path}: {e}") from None


def _decode(path: Path, size: int) -> np.ndarray:
    im = open_rgb(path)
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def list_image_folder(root) -> tuple[list[Path], list[int], list[str]]:
    """Files, labels and class names (sorted folder names) of root/<class>/<image>, without decoding anything."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DartsNasError(f"image folder {root} does not exist" if not root.exists()
                            else f"image folder {root} is a file, expected a directory of class folders")
    class_dirs = _class_dirs(root)
    if not class_dirs:
        raise DartsNasError(f"image folder {root} has no class folders: expected {root}/<class>/<image>")
    files, labels = [], []
    for label, d in enumerate(class_dirs):
        images = _image_files(d)
        if not images:
            raise DartsNasError(f"class folder {d} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        files += images
        labels += [label] * len(images)
    return files, labels, [d.name for d in class_dirs]


def load_image_folder(root, image_size: int = 32) -> ImageDataset:
    """Load root/<class>/<image> (classes = sorted folder names), every image resized to image_size x image_size."""
    if not isinstance(image_size, int) or image_size < 1:
        raise DartsNasError(f"image size must be a positive integer, got {image_size!r}")
    files, labels, classes = list_image_folder(root)
    pixels = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        pixels[i] = _decode(f, image_size)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    mean, std = channel_stats(images)
    return ImageDataset(images, torch.tensor(labels, dtype=torch.int64), classes,
                        mean, std, "folder")
