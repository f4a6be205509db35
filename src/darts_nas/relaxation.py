"""Relaxations: how architecture parameters (alphas) become op weights.

DARTS (eq. 2) uses a softmax over the candidate ops of each edge. Later variants (sigmoid, Gumbel-softmax)
register here under their own names and every space picks one by name.
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import DartsNasError


def softmax(alpha: torch.Tensor) -> torch.Tensor:
    """Op weights of each edge (rows): softmax over the candidate ops (columns)."""
    return torch.softmax(alpha, dim=-1)


RELAXATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"softmax": softmax}


def get_relaxation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return RELAXATIONS[name]
    except KeyError:
        raise DartsNasError(f"unknown relaxation {name!r} (known: {', '.join(RELAXATIONS)})") from None
