"""Checkpoints and run-directory files, written atomically: a crash mid-write never replaces the last good
file. Checkpoints hold only tensors and plain values so they load with ``weights_only=True``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from ..errors import DartsNasError

CHECKPOINT = "checkpoint.pt"


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def save_checkpoint(path, state: dict) -> None:
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def resolve_checkpoint(path) -> Path:
    """A checkpoint file, or the checkpoint inside a run directory."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise DartsNasError(f"no checkpoint at {p} (give a run directory or a {CHECKPOINT} file)")
    return p


def load_checkpoint(path, map_location="cpu") -> dict:
    p = resolve_checkpoint(path)
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say so, without a traceback
        raise DartsNasError(f"cannot read checkpoint {p}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise DartsNasError(f"{p} is not a darts-nas checkpoint")
    return state
