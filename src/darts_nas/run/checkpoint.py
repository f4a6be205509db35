"""Checkpoints and run-directory files, written atomically: a crash mid-write never replaces the last good
file. Checkpoints hold only tensors and plain values so they load with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DartsNasError
from ..fileio import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
BEST, LAST = "best.pt", "last.pt"  # a training run's network files

# What a checkpoint holds (its "kind"): a search, a training run of an image network, of a language model or of a
# Transformer, an RL run, or a trained network alone (best.pt / last.pt).
SEARCH_KIND = "darts-nas/search"
TRAIN_KIND = "darts-nas/train"
LM_TRAIN_KIND = "darts-nas/train-lm"
TRANSFORMER_TRAIN_KIND = "darts-nas/train-transformer"
RL_KIND = "darts-nas/rl"
MODEL_KIND = "darts-nas/model"


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
    except Exception as e:  # a truncated, corrupt or foreign file: say so, without a traceback or PyTorch's advice
        raise DartsNasError(f"cannot read checkpoint {p}: {_unreadable(e)}; expected a darts-nas checkpoint (a run "
                            f"directory's {CHECKPOINT}, or a trained network's {BEST} / {LAST}) saved by "
                            "torch.save") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise DartsNasError(f"{p} is not a darts-nas checkpoint")
    if kind is not None and state["kind"] != kind:
        raise DartsNasError(f"{p} holds a {state['kind']!r} checkpoint, not a {kind!r} one")
    return state


def _unreadable(e: Exception) -> str:
    """Why torch.load failed, in our words: PyTorch's own message suggests turning safe loading off, which a
    file from elsewhere must never be given."""
    text = str(e)
    if "weights_only" in text or "Unsupported global" in text or "WeightsUnpickler" in text:
        return "it holds objects other than tensors and plain values, which darts-nas never writes and will not load"
    if isinstance(e, (EOFError,)) or "EOF" in text or "central directory" in text or "zip archive" in text:
        return "the file is truncated or not a PyTorch file"
    return f"not a readable PyTorch file ({type(e).__name__})"
