"""CIFAR-10/100 in the standard python (pickle) format, read from the batches directory or straight from the
official tarball, with shape checks, MD5 comparison and an optional checksum-verified download."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import DartsNasError
from .dataset import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, ImageDataset

ROW_BYTES = 3 * 32 * 32
# Images per split; a module-level dict so tests can shrink it instead of writing 150 MB of fake batches.
EXPECTED_COUNTS = {"train": 50_000, "test": 10_000}
DOWNLOAD_TIMEOUT = 30.0
CHUNK = 1 << 20


@dataclass(frozen=True)
class CifarSpec:
    title: str
    dirname: str
    tarball: str
    url: str
    tar_md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    md5: dict
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def files(self, train: bool) -> tuple[str, ...]:
        return self.train_files if train else self.test_files

    def expected_listing(self) -> str:
        if len(self.train_files) > 1:
            data = f"{self.train_files[0][:-1]}1..{len(self.train_files)}"
        else:
            data = ",".join(self.train_files)
        return "{" + ",".join([data, *self.test_files, self.meta]) + "}"


SPECS = {
    "cifar10": CifarSpec(
        title="CIFAR-10", dirname="cifar-10-batches-py", tarball="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", tar_md5="c58f30108f718f92721af3b95e74349a",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
        meta="batches.meta", label_key=b"labels", names_key=b"label_names", num_classes=10,
        md5={"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e"},
        mean=CIFAR10_MEAN, std=CIFAR10_STD),
    "cifar100": CifarSpec(
        title="CIFAR-100", dirname="cifar-100-python", tarball="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", tar_md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=("train",), test_files=("test",), meta="meta", label_key=b"fine_labels",
        names_key=b"fine_label_names", num_classes=100,
        md5={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
        mean=CIFAR100_MEAN, std=CIFAR100_STD),
}


# -- reading ---------------------------------------------------------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """CIFAR batches only need numpy arrays (and bytes, which protocol 2 writes via _codecs.encode); refusing every
    other global keeps a hostile file from running code."""

    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if module.startswith("numpy.core"):  # pickles written by numpy 1.x (the official release)
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str):
    try:
        return _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # any failure means the same thing to the user: not a CIFAR pickle
        raise DartsNasError(f"{where} is not a readable CIFAR pickle ({type(e).__name__}: {e})") from None


def _read_hashed(fileobj) -> tuple[bytes, str]:
    """Read a whole stream in 1 MB chunks, hashing as we go, so each file is read exactly once."""
    h, parts = hashlib.md5(), []
    while chunk := fileobj.read(CHUNK):
        h.update(chunk)
        parts.append(chunk)
    return b"".join(parts), h.hexdigest()


def _read_dir(directory: Path, names) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, md5, where) for each file of `names` in `directory`, read in parallel threads (file reads
    and hashlib release the GIL, which roughly halves the load time of CIFAR's 150 MB)."""
    def read(name):
        path = directory / name
        try:
            with open(path, "rb") as f:
                raw, digest = _read_hashed(f)
        except OSError as e:
            raise DartsNasError(f"cannot read {path}: {e.strerror or e}") from None
        return name, (raw, digest, str(path))

    with ThreadPoolExecutor(max_workers=min(len(names), 8)) as pool:
        return dict(pool.map(read, names))


def _read_tar(tar_path: Path, names) -> dict[str, tuple[bytes, str, str]]:
    """Stream the tarball once and keep the members whose base name is wanted (no extraction to disk)."""
    wanted, out = set(names), {}
    try:
        with tarfile.open(tar_path, "r|*", bufsize=CHUNK) as tf:
            for member in tf:
                base = PurePosixPath(member.name).name
                if member.isfile() and base in wanted and base not in out:
                    raw, digest = _read_hashed(tf.extractfile(member))
                    out[base] = (raw, digest, f"{tar_path}:{member.name}")
                    if len(out) == len(wanted):
                        break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DartsNasError(f"cannot read the tarball {tar_path}: {e}") from None
    missing = [n for n in names if n not in out]
    if missing:
        raise DartsNasError(f"the tarball {tar_path} has no member named {', '.join(missing)}")
    return out


def _parse_batch(raw: bytes, where: str, spec: CifarSpec, expected_rows: int) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle(raw, where)
    if not isinstance(obj, dict) or b"data" not in obj or spec.label_key not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DartsNasError(f"{where} is not a {spec.title} batch: expected keys b'data' and {spec.label_key!r}, "
                            f"found {keys}")
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        desc = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DartsNasError(f"{where}: b'data' is {desc}, expected uint8 [{expected_rows}, {ROW_BYTES}]")
    if data.shape[0] != expected_rows:
        raise DartsNasError(f"{where}: has {data.shape[0]} images, expected {expected_rows}")
    try:
        labels = np.asarray(obj[spec.label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DartsNasError(f"{where}: {spec.label_key!r} is not a list of integers") from None
    if labels.shape != (expected_rows,):
        raise DartsNasError(f"{where}: {spec.label_key!r} has shape {list(labels.shape)}, expected [{expected_rows}]")
    if labels.min() < 0 or labels.max() >= spec.num_classes:
        raise DartsNasError(f"{where}: labels range over {labels.min()}..{labels.max()}, expected "
                            f"0..{spec.num_classes - 1}")
    return data, labels


def _parse_meta(raw: bytes, where: str, spec: CifarSpec) -> list[str]:
    obj = _unpickle(raw, where)
    names = obj.get(spec.names_key) if isinstance(obj, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != spec.num_classes:
        raise DartsNasError(f"{where} is not {spec.title} metadata: expected {spec.names_key!r} with "
                            f"{spec.num_classes} class names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


# -- locating and downloading ----------------------------------------------------------------------------------------
def _locate(root: Path, spec: CifarSpec, train: bool):
    """('dir', path) or ('tar', path) for the first usable source under `root`, None when there is none.

    A complete batches directory wins over a tarball; an incomplete directory with no tarball is an error (naming
    what is missing) rather than a reason to download on top of it.
    """
    needed = (*spec.files(train), spec.meta)
    known = (*spec.md5, spec.meta)
    dirs = [d for d in (root, root / spec.dirname) if d.is_dir() and any((d / n).is_file() for n in known)]
    for d in dirs:
        if all((d / n).is_file() for n in needed):
            return "dir", d
    for t in (root, root / spec.tarball):
        if t.is_file():
            return "tar", t
    if dirs:
        missing = [n for n in needed if not (dirs[0] / n).is_file()]
        raise DartsNasError(f"{spec.title} directory {dirs[0]} is incomplete: missing {', '.join(missing)}")
    return None


def _download(url: str, dest: Path, md5: str) -> str | None:
    """Fetch `url` into `dest` via a temp file renamed only once its MD5 matches; returns why it failed, if it did."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        return f"cannot write to {dest.parent}: {e.strerror or e}"
    tmp, done = Path(tmp_name), False
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            while chunk := response.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != md5:
            raise DartsNasError(f"the download from {url} has md5 {h.hexdigest()}, expected {md5}; "
                                f"removed it, nothing was written to {dest}")
        os.replace(tmp, dest)
        done = True
        return None
    except (OSError, ValueError, http.client.HTTPException) as e:
        # URLError's own text wraps the real reason in "<urlopen error ...>"; HTTPError's text has the status code.
        return f"{url}: {e.reason if type(e) is urllib.error.URLError else e}"
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def load_cifar(root, name: str = "cifar10", train: bool = True, download: bool = True, url: str | None = None,
               md5: str | None = None) -> ImageDataset:
    """Load a CIFAR split from the batches dir, its parent, the tarball or the tarball's directory."""
    if name not in SPECS:
        raise DartsNasError(f"unknown CIFAR variant {name!r}; choose one of {', '.join(SPECS)}")
    spec = SPECS[name]
    root = Path(root).expanduser().absolute()  # messages then name the real place searched, not "data"
    is_tar_path = root.name.endswith((".tar.gz", ".tgz"))
    notes: list[str] = []
    found = _locate(root, spec, train)
    if found is None:
        reason = "download is off"
        if download:
            dest = root if is_tar_path else root / spec.tarball
            reason = _download(url or spec.url, dest, md5 or spec.tar_md5)
            if reason is None:
                notes.append(f"{name}: downloaded {url or spec.url} to {dest}")
                found = ("tar", dest)
            else:
                reason = f"download failed: {reason}"
        if found is None:
            expected = (f"the tarball {root}" if is_tar_path else
                        f"{root / spec.dirname}/{spec.expected_listing()} or {root / spec.tarball}")
            raise DartsNasError(f"{spec.title} not found under {root}: expected {expected} ({reason})")

    kind, path = found
    files = spec.files(train)
    raw = (_read_dir if kind == "dir" else _read_tar)(path, (*files, spec.meta))
    split = "train" if train else "test"
    rows = EXPECTED_COUNTS[split] // len(files)
    datas, labels = zip(*(_parse_batch(raw[f][0], raw[f][2], spec, rows) for f in files))
    classes = _parse_meta(raw[spec.meta][0], raw[spec.meta][2], spec)

    differ = [f for f in files if raw[f][1] != spec.md5[f]]
    if differ:
        notes.append(f"{name}: files differ from the official release (md5 of {', '.join(differ)}); continuing")

    data = np.concatenate(datas) if len(datas) > 1 else datas[0]
    if not (data.flags.writeable and data.flags.c_contiguous):  # torch.from_numpy wants its own writable buffer
        data = data.copy()
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32))
    return ImageDataset(images, torch.from_numpy(np.concatenate(labels)), classes, spec.mean, spec.std, name, notes)
