"""Checkpoints and run-directory files, written atomically: a crash mid-write never replaces the last good
file. Checkpoints hold only tensors and plain values so they load with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DartsNasError
from ..fileio import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
BEST, LAST = "best.pt", "last.pt"  # a training run's network files


def save_checkpoint(path, state: dict) -> None:
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def resolve_checkpoint(path) -> Path:
    """A checkpoint file, or the checkpoint inside a run directory."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise DartsNasError(f"no checkpoint at {p} (give a run directory or a {CHECKPOINT} file)")
    return p


def load_checkpoint(path, kind: str | None = None, map_location="cpu") -> dict:
    """Load a darts-nas checkpoint (a file or a run directory's); with `kind`, refuse any other kind."""
    p = resolve_checkpoint(path)
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say so, without a traceback
        raise DartsNasError(f"cannot read checkpoint {p}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise DartsNasError(f"{p} is not a darts-nas checkpoint")
    if kind is not None and state["kind"] != kind:
        raise DartsNasError(f"{p} holds a {state['kind']!r} checkpoint, not a {kind!r} one")
    return state
