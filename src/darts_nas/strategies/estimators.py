"""Gradient estimators for the architecture distribution: d/dalpha E_{b ~ q_alpha}[f(b)], where q_alpha picks one op
per edge (a categorical of softmax(alpha) per row of an ``[edges, ops]`` matrix) and f may be non-differentiable
(a measured latency, an accuracy). All three work on the same Gumbel sample, and each is the gradient of a
surrogate scalar, so autograd (or ``torch.func.grad``) computes it:

- ``relaxed`` (SNAS, DNAS): the pathwise gradient of f at the Gumbel-softmax relaxation
  zeta = softmax((alpha + G) / tau), G ~ Gumbel(0, 1). Needs f on relaxed weights; it is the gradient of the relaxed
  objective E[f(zeta)], biased for E[f(b)] when f is not linear (less so as tau shrinks).
- ``reinforce``: the score function (f(b) - c) d log q(b), b = one_hot(argmax(alpha + G)), with a baseline c (a
  moving average of earlier f(b), :class:`MovingBaseline`, so that c does not depend on this b). Unbiased for any f.
- ``unas`` (UNAS, arXiv:1912.07651, whose gradient is REBAR's, arXiv:1703.07370, with coefficient 1):
  (f(b) - h(zeta~)) d log q(b) + d h(zeta) - d h(zeta~), where h is a differentiable control variate on relaxed
  weights (the supernet's loss at relaxed weights; a latency surrogate for a measured latency), zeta the relaxation
  of the sample that gave b, and zeta~ = softmax(z~ / tau) with z~ drawn from the Gumbel-perturbed logits
  conditioned on their argmax being b (reparameterized through alpha). E[h(zeta~) d log q(b)] = d E[h(zeta)] -
  E[d h(zeta~)], so the estimator is unbiased for E[f(b)] whatever h is, and has lower variance than REINFORCE the
  better h tracks f.

The conditional sample given b (per edge, log-probabilities theta = log_softmax(alpha), v ~ U(0, 1) independent of
G): z~_b = -log(-log v_b), and z~_i = -log(-log(v_i) exp(-theta_i) - log v_b) for i != b (the other Gumbels,
truncated below the maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import DartsNasError

ESTIMATORS = ("relaxed", "reinforce", "unas")
TINY = 1e-10


@dataclass
class Sample:
    """One draw for an ``[..., edges, ops]`` alpha: the discrete one-hot b, its relaxation zeta, the conditional
    relaxation zeta~ given b, and log q(b) (summed over edges)."""

    b: torch.Tensor
    zeta: torch.Tensor
    zeta_cond: torch.Tensor
    log_q: torch.Tensor


def uniform(shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device, dtype=dtype).clamp(TINY, 1 - TINY)


def draw(alpha: torch.Tensor, tau: float, u: torch.Tensor, v: torch.Tensor) -> Sample:
    """The sample of uniforms `u` (for G) and `v` (for the conditional), both shaped like `alpha` (or with leading
    sample dimensions)."""
    theta = torch.log_softmax(alpha, dim=-1)
    z = theta - torch.log(-torch.log(u))
    b = (z == z.amax(-1, keepdim=True)).to(alpha.dtype)  # one-hot of the argmax (vmap-friendly)
    zeta = torch.softmax(z / tau, dim=-1)
    log_vb = (torch.log(v) * b).sum(-1, keepdim=True)
    z_cond = torch.where(b.bool(), -torch.log(-log_vb), -torch.log(-torch.log(v) * torch.exp(-theta) - log_vb))
    zeta_cond = torch.softmax(z_cond / tau, dim=-1)
    log_q = (theta * b).sum((-2, -1))
    return Sample(b, zeta, zeta_cond, log_q)


def surrogate(method: str, sample: Sample, f_discrete: Callable, f_relaxed: Callable | None = None,
              baseline=0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(surrogate, f(b)): the surrogate's gradient in alpha is the `method`'s estimate. `f_discrete(weights)` is the
    objective at one-hot weights (need not be differentiable); `f_relaxed(weights)` the differentiable function at
    relaxed weights (the objective itself for ``relaxed``; the control variate for ``unas``)."""
    if method not in ESTIMATORS:
        raise DartsNasError(f"unknown estimator {method!r} (known: {', '.join(ESTIMATORS)})")
    f_b = f_discrete(sample.b.detach())
    if method == "relaxed":
        if f_relaxed is None:
            raise DartsNasError("the relaxed estimator needs the objective on relaxed weights")
        return f_relaxed(sample.zeta), f_b.detach()
    if method == "reinforce":
        return (f_b.detach() - baseline) * sample.log_q, f_b.detach()
    if f_relaxed is None:
        raise DartsNasError("the UNAS estimator needs a differentiable control variate on relaxed weights")
    h_cond = f_relaxed(sample.zeta_cond)
    return (f_b.detach() - h_cond.detach()) * sample.log_q + f_relaxed(sample.zeta) - h_cond, f_b.detach()


class MovingBaseline:
    """REINFORCE's baseline: c <- decay c + (1 - decay) f(b) after each step (UNAS' code: decay 0.1), read before
    the update, so it never depends on the current sample."""

    def __init__(self, decay: float = 0.1):
        self.decay, self.value, self.seen = decay, 0.0, False

    def update(self, f_b) -> None:
        f_b = float(f_b)
        self.value = f_b if not self.seen else self.decay * self.value + (1 - self.decay) * f_b
        self.seen = True


def per_sample_gradients(method: str, alpha: torch.Tensor, f_discrete, f_relaxed=None, samples: int = 10000,
                         tau: float = 1.0, baseline: float = 0.0, generator=None) -> torch.Tensor:
    """`samples` independent estimates of d E[f(b)] / d alpha, ``[samples, *alpha.shape]`` (torch.func.vmap of
    the surrogate's gradient): what the estimator tests and `darts-nas bench estimators` measure."""
    from torch.func import grad, vmap

    u = uniform((samples, *alpha.shape), generator, alpha.device, alpha.dtype)
    v = uniform((samples, *alpha.shape), generator, alpha.device, alpha.dtype)

    def one(a, ui, vi):
        return surrogate(method, draw(a, tau, ui, vi), f_discrete, f_relaxed, baseline)[0]

    return vmap(grad(one), in_dims=(None, 0, 0), randomness="error")(alpha, u, v)


def exact_gradient(alpha: torch.Tensor, f_discrete) -> torch.Tensor:
    """d E_q[f(b)] / d alpha by enumerating every discrete architecture (ops ** edges of them): the reference."""
    import itertools

    edges, ops = alpha.shape
    alpha = alpha.detach().requires_grad_()
    q = torch.softmax(alpha, -1)
    total = alpha.new_zeros(())
    for choice in itertools.product(range(ops), repeat=edges):
        b = torch.nn.functional.one_hot(torch.tensor(choice), ops).to(alpha.dtype)
        total = total + q[torch.arange(edges), list(choice)].prod() * f_discrete(b).detach()
    return torch.autograd.grad(total, alpha)[0]
