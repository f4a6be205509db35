"""Single-level search (Single-DARTS; SNAS' joint update): weights and alphas take their step from the gradient of
one training loss on the same batch,

    (g_w, g_alpha) = d L_train(w, alpha) / d(w, alpha),   w <- SGD(w, g_w),   alpha <- Adam(alpha, g_alpha),

both from the same forward and backward pass. No validation batch and no hypergradient: Single-DARTS reports that
this removes DARTS' collapse to parameter-free cells on NAS-Bench-201.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributed import average
from .bilevel import alpha_step, weight_step
from .objectives import EstimatorSettings


@dataclass
class SingleLevel:
    regularizer: object = None
    estimator: str = "relaxed"
    gen_gap: float = 0.0

    name = "single-level"
    settings_groups = (EstimatorSettings,)

    def __post_init__(self):
        from .objectives import AlphaGradient

        self.alpha_grad = AlphaGradient(self.estimator, self.gen_gap, single_level=True)

    @property
    def uses_val_batch(self) -> bool:
        """Only UNAS' generalization gap reads a validation batch (paired with the training one)."""
        return bool(self.gen_gap)

    @classmethod
    def from_config(cls, config, regularizer=None) -> "SingleLevel":
        return cls(regularizer=regularizer, estimator=config.estimator, gen_gap=config.gen_gap)

    @staticmethod
    def double_backward(config) -> bool:
        """One backward per step."""
        return False

    @staticmethod
    def models_sgd_step(config) -> bool:
        """Single-level takes no hypergradient: any weight optimizer goes with it."""
        return False

    @staticmethod
    def config_problems(config, relaxation) -> list[str]:
        from .objectives import estimator_problems

        return estimator_problems(config, relaxation)

    def describe(self) -> str:
        return "single-level" + (f", {self.estimator} estimator" if self.estimator != "relaxed" else "") + \
            (f", generalization gap {self.gen_gap:g}" if self.gen_gap else "")

    def state_dict(self) -> dict:
        return self.alpha_grad.state_dict()

    def load_state_dict(self, state) -> None:
        self.alpha_grad.load_state_dict(state)

    def step(self, model, train_batch, val_batch, w_optimizer, a_optimizer, lr, grad_clip: float | None,
             update_alphas: bool = True):
        """One step on `train_batch` (`val_batch` is ignored); returns (training loss, output, None), detached."""
        if not update_alphas:
            return (*weight_step(model, train_batch, w_optimizer, grad_clip), None)
        if self.estimator != "relaxed" or self.gen_gap:
            # The alphas' gradient at the current weights (UNAS' estimators / objective), then both steps.
            grads, _ = self.alpha_grad(model, train_batch, val_batch)
            loss, out = weight_step(model, train_batch, w_optimizer, grad_clip)
            alpha_step(model, grads, a_optimizer, self.regularizer)
            return loss, out, None
        weights, alphas = model.weight_parameters(), model.arch_parameters()
        loss, objective, out = model.training_loss(train_batch)
        grads = average(torch.autograd.grad(objective, [*weights, *alphas], allow_unused=True), [*weights, *alphas])
        weight_step(model, None, w_optimizer, grad_clip, grads=grads[:len(weights)])
        alpha_step(model, grads[len(weights):], a_optimizer, self.regularizer)
        return loss.detach(), out.detach(), None
