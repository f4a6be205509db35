"""Relaxations: how architecture parameters (alphas) become op weights.

Every relaxation maps alphas ``[edges, ops]`` to op weights of the same shape, row by row (one row per edge):

- ``softmax``: DARTS eq. 2, the ops of an edge compete for one unit of weight.
- ``sigmoid``: each op weighted independently by sigmoid(alpha) (Single-DARTS; the constrained-bilevel abstract's
  "independent activation": no competition within an edge).
- ``gumbel``: SNAS, a Gumbel-softmax sample softmax((alpha + g) / tau), g ~ Gumbel(0, 1), fresh at every forward.
- ``hard-gumbel``: GDAS, the one-hot of the sample's argmax with the soft sample's gradient (straight-through);
  the search spaces then evaluate only the selected op of each edge.

``tau`` (a 0-dim tensor, annealed by the run loop) is read by the Gumbel relaxations only. :func:`max_w` is
sharpDARTS' Max-W weighting, applicable after any relaxation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import registry_lookup


def softmax(alpha: torch.Tensor, tau=None) -> torch.Tensor:
    """Op weights of each edge (rows): softmax over the candidate ops (columns)."""
    return torch.softmax(alpha, dim=-1)


def sigmoid(alpha: torch.Tensor, tau=None) -> torch.Tensor:
    """Each op weighted by sigmoid(alpha) on its own: the weights of an edge need not sum to one."""
    return torch.sigmoid(alpha)


def gumbel_noise(shape, device, dtype=torch.float32) -> torch.Tensor:
    """Standard Gumbel samples -log(-log U), U ~ Uniform(0, 1) kept away from 0 and 1 (no infinities)."""
    u = torch.rand(shape, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return -torch.log(-torch.log(u.clamp(tiny, 1.0 - torch.finfo(dtype).eps)))


def gumbel_softmax(alpha: torch.Tensor, tau) -> torch.Tensor:
    """SNAS: a relaxed sample of the categorical distribution softmax(alpha) at temperature tau."""
    return torch.softmax((alpha + gumbel_noise(alpha.shape, alpha.device, alpha.dtype)) / tau, dim=-1)


def hard_gumbel(alpha: torch.Tensor, tau) -> torch.Tensor:
    """GDAS: a one-hot sample per row, argmax of the Gumbel-softmax sample; forward value one-hot, gradient that
    of the soft sample (straight-through). The argmax of alpha + g is an exact draw from softmax(alpha)."""
    soft = gumbel_softmax(alpha, tau)
    hard = torch.nn.functional.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def max_w(weights: torch.Tensor) -> torch.Tensor:
    """sharpDARTS' Max-W weighting: w_k + 1 - max_j w_j per edge, the maximum taken without gradient. The
    strongest op of every edge gets weight 1 and the others are weighted down by their distance from it."""
    return weights + 1.0 - weights.max(dim=-1, keepdim=True).values.detach()


@dataclass(frozen=True)
class Relaxation:
    name: str
    weights: Callable  # (alpha, tau) -> op weights used in the forward pass
    stochastic: bool = False  # draws noise at every forward
    hard: bool = False  # one op per edge: spaces evaluate only the selected op
    independent: bool = False  # no competition within an edge (ranked by sigmoid, not softmax)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """The deterministic weights that logs show and the derivation ranks: sigmoid(alpha) for an independent
        relaxation, else softmax(alpha) (the distribution the Gumbel relaxations sample from)."""
        return torch.sigmoid(alpha) if self.independent else torch.softmax(alpha, dim=-1)


RELAXATIONS: dict[str, Relaxation] = {
    "softmax": Relaxation("softmax", softmax),
    "sigmoid": Relaxation("sigmoid", sigmoid, independent=True),
    "gumbel": Relaxation("gumbel", gumbel_softmax, stochastic=True),
    "hard-gumbel": Relaxation("hard-gumbel", hard_gumbel, stochastic=True, hard=True),
}


def get_relaxation(name: str) -> Relaxation:
    return registry_lookup(RELAXATIONS, name, "relaxation")
