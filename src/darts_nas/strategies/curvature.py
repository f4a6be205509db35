"""The collapse signal of RobustDARTS: the dominant eigenvalue of the Hessian of the validation loss with respect
to the alphas, by power iteration on Hessian-vector products (double backward). A sharp rise of it precedes the
collapse to parameter-free cells."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributed import average
from ..settings import SettingsGroup, setting
from .regularizers import NEGATIVE_MESSAGE


@dataclass
class CollapseSettings(SettingsGroup):
    """The collapse signals a search records and may stop on: this eigenvalue and the derived cell's
    parameter-free ops."""

    POSITIVE = ("hessian_batches", "hessian_iters")

    # The estimate's defaults keep its share of every preset's search small (measured: docs/benchmarks.md): one
    # power-iteration step costs about one search step, so every epoch with 2 batches x 20 steps added up to 38%.
    hessian_every: int = setting(5, "epochs between estimates of the dominant Hessian eigenvalue of the alphas, also "
                                 "estimated after the last epoch (0: off)")
    hessian_batches: int = setting(1, "validation batches of the Hessian estimate")
    hessian_iters: int = setting(10, "power-iteration steps of the Hessian estimate")
    stop_eigenvalue: float = setting(0.0, "stop the search when the dominant eigenvalue exceeds this (0: never)")
    stop_param_free: int = setting(0, "stop the search when the derived cell has this many parameter-free ops (0: "
                                   "never)", space_setting=True)

    @classmethod
    def problems(cls, config) -> list[str]:
        if min(config.hessian_every, config.stop_eigenvalue, config.stop_param_free) < 0:
            return [NEGATIVE_MESSAGE]
        return []


def alpha_hessian_eigenvalue(model, batches, iters: int = 20, tol: float = 1e-4, generator=None) -> float:
    """The eigenvalue of largest magnitude of d^2 L / dalpha^2, L the mean loss over `batches` (signed: the
    Rayleigh quotient of the converged vector). Stops after `iters` products or when the estimate changes by less
    than `tol` relative."""
    with model.twice_differentiable():
        return _eigenvalue(model, list(batches), iters, tol, generator)


def _eigenvalue(model, batches, iters, tol, generator) -> float:
    alphas = model.arch_parameters()
    grads = None
    for batch in batches:  # one graph per batch, kept for all the iterations
        loss, _ = model.loss(batch)
        g = torch.autograd.grad(loss / len(batches), alphas, create_graph=True)
        grads = list(g) if grads is None else [a + b for a, b in zip(grads, g)]
    v = [torch.randn(a.shape, generator=generator, dtype=a.dtype).to(a.device) for a in alphas]
    estimate = 0.0
    for i in range(iters):
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / norm for t in v]
        hv = average(torch.autograd.grad(grads, alphas, grad_outputs=v, retain_graph=i < iters - 1))
        new = float(sum((a * b).sum() for a, b in zip(v, hv)))  # Rayleigh quotient, read once per iteration
        v = [t.detach() for t in hv]
        if i and abs(new - estimate) <= tol * max(abs(new), 1e-12):
            return new
        estimate = new
    return estimate
