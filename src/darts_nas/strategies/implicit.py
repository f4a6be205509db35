"""iDARTS: the architecture gradient by the implicit function theorem.

If w*(alpha) minimizes the training objective, dw*/dalpha = -H^{-1} d^2 L_train/dw dalpha with H = d^2 L_train/dw^2,
so

    g_alpha = dL_val/dalpha - (d^2 L_train / dalpha dw) H^{-1} dL_val/dw                      (evaluated at the current w)

and the inverse-Hessian product comes from a Neumann series truncated after K terms,

    H^{-1} v  ~  eta * sum_{k=0}^{K-1} (I - eta H)^k v,

which converges to H^{-1} v as K grows whenever 0 < eta * lambda < 2 for every eigenvalue lambda of H. The
series costs K - 1 products with H and the cross term one more product, the same Hessian-vector product the
second-order DARTS uses (exact double backward, or finite differences). The training objective includes the
weight optimizer's L2 decay, so H carries + weight_decay * I. eta is the weight learning rate of the step.
Unlike DARTS' unrolled step, the result does not depend on how w was reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..distributed import average
from ..errors import DartsNasError
from ..settings import SettingsGroup, setting
from .bilevel import AlternatingStep, HvpSettings, _global_norm, check_settings, hessian_vector_product


def weight_hessian_vector_product(model, batch, v: Sequence[torch.Tensor], method: str = "exact", r: float = 0.01,
                                  train_grads: Sequence[torch.Tensor] | None = None):
    """(d^2 L / dw^2) v at the model's current weights: exact (differentiating `train_grads`, built with
    ``create_graph=True``, once more) or by central finite differences of the weight gradient (r = r0 / ||v||)."""
    weights = model.weight_parameters()
    if method == "exact":
        if train_grads is None:
            loss, _ = model.loss(batch)
            train_grads = torch.autograd.grad(loss, weights, create_graph=True)
        return average(torch.autograd.grad(train_grads, weights, grad_outputs=list(v), retain_graph=True))
    names = list(model.named_weight_parameters())
    eps = r / _global_norm(v)
    grads = []
    for sign in (1.0, -1.0):
        shifted = {n: w.detach() + (sign * eps) * vi for n, w, vi in zip(names, weights, v)}
        shifted = {n: t.requires_grad_() for n, t in shifted.items()}
        loss, _ = model.loss(batch, shifted)
        grads.append(torch.autograd.grad(loss, list(shifted.values())))
    return average([(gp - gm) / (2 * eps) for gp, gm in zip(*grads)])


def neumann_inverse_hvp(hvp, v: Sequence[torch.Tensor], eta, terms: int, weight_decay: float = 0.0):
    """eta * sum_{k<terms} (I - eta (H + weight_decay I))^k v, with `hvp(u) = H u`."""
    if terms < 1:
        raise DartsNasError(f"the Neumann series needs at least 1 term, got {terms}")
    current = [t.detach() for t in v]
    total = list(current)
    for _ in range(terms - 1):
        hv = hvp(current)
        current = [c - eta * (h + weight_decay * c) for c, h in zip(current, hv)]
        total = [s + c for s, c in zip(total, current)]
    return [eta * s for s in total]


def implicit_gradient(model, train_batch, val_batch, *, eta, terms: int = 2, weight_decay: float = 0.0,
                      hvp: str = "exact", r: float = 0.01, with_output: bool = False):
    """The iDARTS hypergradient of each alpha tensor (see the module doc); ``with_output=True`` returns it with the
    model output of the validation loss, detached."""
    check_settings(2, hvp)
    alphas, weights = model.arch_parameters(), model.weight_parameters()
    val_loss, val_out = model.loss(val_batch)
    grads = average(torch.autograd.grad(val_loss, [*alphas, *weights], allow_unused=True), [*alphas, *weights])
    direct = [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads[: len(alphas)])]
    v = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads[len(alphas):])]

    train_grads = None
    if hvp == "exact":
        loss, _ = model.loss(train_batch)
        train_grads = torch.autograd.grad(loss, weights, create_graph=True)
    p = neumann_inverse_hvp(lambda u: weight_hessian_vector_product(model, train_batch, u, hvp, r, train_grads), v,
                            eta, terms, weight_decay)
    cross = hessian_vector_product(model, train_batch, p, hvp, r, train_grads)
    grads = [d - c for d, c in zip(direct, cross)]
    return (grads, val_out.detach()) if with_output else grads


@dataclass
class ImplicitSettings(SettingsGroup):
    """iDARTS' Neumann series (its Hessian-vector products are HvpSettings')."""

    POSITIVE = ("neumann_terms",)

    neumann_terms: int = setting(2, "implicit: terms K of the Neumann series of the inverse Hessian")


@dataclass
class Implicit(AlternatingStep):
    """iDARTS: alphas along the implicit hypergradient (validation batch), then the weights' SGD step."""

    terms: int = 2
    hvp: str = "exact"
    r: float = 0.01
    regularizer: object = None

    name = "implicit"
    settings_groups = (ImplicitSettings, HvpSettings)

    def __post_init__(self):
        check_settings(2, self.hvp)
        if self.terms < 1:
            raise DartsNasError(f"--neumann-terms must be at least 1, got {self.terms}")

    @classmethod
    def from_config(cls, config, regularizer=None) -> "Implicit":
        return cls(terms=config.neumann_terms, hvp=config.hvp, r=config.fd_r, regularizer=regularizer)

    @staticmethod
    def double_backward(config) -> bool:
        """The Neumann series' products with --hvp exact differentiate the training gradient once more."""
        return config.hvp == "exact"

    @staticmethod
    def models_sgd_step(config) -> bool:
        """The implicit hypergradient models an SGD step of the weights."""
        return True

    @staticmethod
    def config_problems(config, relaxation) -> list[str]:
        if config.estimator != "relaxed" or config.gen_gap:
            return ["--estimator and --gen-gap apply to first-order bilevel and single-level"]
        if relaxation.hard:
            return ["hard-gumbel (GDAS) evaluates one op per edge; use it with first-order bilevel or single-level"]
        return []

    def describe(self) -> str:
        return f"implicit, {self.terms} Neumann terms ({self.hvp})"

    def alpha_gradient(self, model, train_batch, val_batch, w_optimizer, lr):
        return implicit_gradient(model, train_batch, val_batch, eta=lr, terms=self.terms,
                                 weight_decay=w_optimizer.param_groups[0].get("weight_decay", 0.0), hvp=self.hvp,
                                 r=self.r, with_output=True)
