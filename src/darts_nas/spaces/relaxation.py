"""Relaxations: how architecture parameters (alphas) become op weights.

Every relaxation maps alphas ``[edges, ops]`` to op weights of the same shape, row by row (one row per edge):

- ``softmax``: DARTS eq. 2, the ops of an edge compete for one unit of weight.
- ``sigmoid``: each op weighted independently by sigmoid(alpha) (Single-DARTS; the constrained-bilevel abstract's
  "independent activation": no competition within an edge).
- ``gumbel``: SNAS, a Gumbel-softmax sample softmax((alpha + g) / tau), g ~ Gumbel(0, 1), fresh at every forward.
- ``hard-gumbel``: GDAS, the one-hot of the sample's argmax with the soft sample's gradient (straight-through);
  the search spaces then evaluate only the selected op of each edge.
- ``clamp``: DARTS-PRIME's activation (constrained bilevel DARTS, arXiv:2106.11655; its authors' code calls it
  CRB): each alpha clamped to [0, 1] on its own, no normalization within an edge. Alphas start at
  1/|ops| + 1e-4 N(0, 1); an alpha at or below 0 after a step is set to 0 and its op pruned for good (a mask
  kept with the model, so it survives resume). The authors pair it with a BatchNorm on each node's sum (the
  ``darts-prime`` space).

``tau`` (a 0-dim tensor, annealed by the run loop) is read by the Gumbel relaxations only. :func:`max_w` is
sharpDARTS' Max-W weighting, applicable after any relaxation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import registry_lookup
from ..settings import SettingsGroup, setting


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


def clamp(alpha: torch.Tensor, tau=None) -> torch.Tensor:
    """DARTS-PRIME: each op weighted by its alpha clamped to [0, 1] (no gradient outside that range)."""
    return alpha.clamp(0.0, 1.0)


def max_w(weights: torch.Tensor) -> torch.Tensor:
    """sharpDARTS' Max-W weighting (arXiv:1903.09900; ahundt/sharpDARTS model_search.py @6f593d4): op k of a
    row is weighted by 1 - max_j w_j + w_k. The strongest op gets weight 1, the others are weighted down by their
    distance from it. As in the authors' code the maximum is not detached: its gradient flows too."""
    return 1.0 - weights.max(dim=-1, keepdim=True).values + weights


@dataclass
class GumbelSettings(SettingsGroup):
    """The temperature of the Gumbel relaxations, annealed linearly over the epochs by the run loop."""

    POSITIVE = ("tau_min",)

    tau_max: float = setting(10.0, "Gumbel temperature at the first epoch (annealed linearly to --tau-min)")
    tau_min: float = setting(0.1, "Gumbel temperature at the last epoch")

    @classmethod
    def problems(cls, config) -> list[str]:
        return ["--tau-max must be at least --tau-min"] if config.tau_max < config.tau_min else []


@dataclass(frozen=True)
class Relaxation:
    name: str
    weights: Callable  # (alpha, tau) -> op weights used in the forward pass
    stochastic: bool = False  # draws noise at every forward
    hard: bool = False  # one op per edge: spaces evaluate only the selected op
    independent: bool = False  # no competition within an edge (ranked by its own weights, not softmax)
    pruning: bool = False  # alphas at or below 0 after a step are zeroed and their ops masked for good
    init: Callable | None = None  # (shape) -> the alphas' initial values, where the relaxation fixes them
    settings_groups: tuple = ()  # the settings it reads (SettingsGroup dataclasses)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """The deterministic weights that logs show and the derivation ranks: the relaxation itself for an
        independent one (sigmoid, clamp), else softmax(alpha) (the distribution the Gumbel relaxations sample
        from)."""
        return self.weights(alpha, None) if self.independent else torch.softmax(alpha, dim=-1)


def uniform_init(shape) -> torch.Tensor:
    """DARTS-PRIME's start: 1/|ops| + 1e-4 N(0, 1), every op near the same weight."""
    return 1.0 / shape[-1] + 1e-4 * torch.randn(shape)


RELAXATIONS: dict[str, Relaxation] = {
    "softmax": Relaxation("softmax", softmax),
    "sigmoid": Relaxation("sigmoid", sigmoid, independent=True),
    "gumbel": Relaxation("gumbel", gumbel_softmax, stochastic=True, settings_groups=(GumbelSettings,)),
    "hard-gumbel": Relaxation("hard-gumbel", hard_gumbel, stochastic=True, hard=True,
                              settings_groups=(GumbelSettings,)),
    "clamp": Relaxation("clamp", clamp, independent=True, pruning=True, init=uniform_init),
}


def get_relaxation(name: str) -> Relaxation:
    return registry_lookup(RELAXATIONS, name, "relaxation")
