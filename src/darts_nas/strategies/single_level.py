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


@dataclass
class SingleLevel:
    regularizer: object = None

    name = "single-level"
    uses_val_batch = False

    @classmethod
    def from_config(cls, config, regularizer=None) -> "SingleLevel":
        return cls(regularizer=regularizer)

    @staticmethod
    def config_problems(config, relaxation) -> list[str]:
        return []

    def describe(self) -> str:
        return "single-level"

    def step(self, model, train_batch, val_batch, w_optimizer, a_optimizer, lr, grad_clip: float | None,
             update_alphas: bool = True):
        """One step on `train_batch` (`val_batch` is ignored); returns (training loss, output, None), detached."""
        if not update_alphas:
            return (*weight_step(model, train_batch, w_optimizer, grad_clip), None)
        weights, alphas = model.weight_parameters(), model.arch_parameters()
        loss, objective, out = model.training_loss(train_batch)
        grads = average(torch.autograd.grad(objective, [*weights, *alphas], allow_unused=True), [*weights, *alphas])
        weight_step(model, None, w_optimizer, grad_clip, grads=grads[:len(weights)])
        alpha_step(model, grads[len(weights):], a_optimizer, self.regularizer)
        return loss.detach(), out.detach(), None
