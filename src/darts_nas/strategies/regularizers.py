"""Penalties on the alphas that any strategy adds to the architecture objective.

- Resource (SNAS): ``weight * sum_edges sum_k p_k cost_k``, the expected parameter count (millions) of the cell
  under the op distribution p = softmax(alpha) (sigmoid for the independent relaxation).
- Discretization, toward a discrete architecture (the constrained-bilevel abstract):
  ``binary``: ``weight * mean(p (1 - p))``, zero exactly when every op weight is 0 or 1;
  ``admm``: ``weight / 2 * ||p - z + u||^2``, the augmented-Lagrangian term of ADMM for the constraint p = z with
  z one-hot per edge; once per epoch z <- one_hot(argmax(p + u)) (the projection onto discrete cells) and
  u <- u + p - z (the scaled dual ascent).
- Latency (UNAS): ``c_t relu(estimate(p) - target)``, estimate the linear surrogate of a measured latency table
  (:mod:`darts_nas.latency`), c_t = weight * min(alpha steps / warm-up steps, 1).

All of it is tensor arithmetic on the device; the ADMM state is saved with the run's checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DartsNasError

DISCRETIZATIONS = ("none", "binary", "admm")


class ArchRegularizer:
    def __init__(self, resource_weight: float = 0.0, discretization: str = "none",
                 discretization_weight: float = 0.0, latency=None, latency_target: float = 0.0,
                 latency_weight: float = 0.0, latency_warmup_steps: int = 0):
        if discretization not in DISCRETIZATIONS:
            raise DartsNasError(f"unknown discretization {discretization!r} (known: {', '.join(DISCRETIZATIONS)})")
        if resource_weight < 0 or discretization_weight < 0:
            raise DartsNasError("--resource-weight and --discretization-weight cannot be negative")
        self.resource_weight = resource_weight
        self.discretization = discretization if discretization_weight > 0 else "none"
        self.discretization_weight = discretization_weight
        self._costs = None
        self.z: dict[str, torch.Tensor] = {}
        self.u: dict[str, torch.Tensor] = {}
        self.latency = latency if latency_weight > 0 else None
        self.latency_target, self.latency_weight = latency_target, latency_weight
        self.latency_warmup_steps = latency_warmup_steps
        self.steps = 0  # alpha steps taken: the latency penalty's warm-up

    @property
    def active(self) -> bool:
        return self.resource_weight > 0 or self.discretization != "none" or self.latency is not None

    def latency_coefficient(self) -> float:
        """c_t: the latency weight, ramped linearly over the warm-up steps."""
        ramp = min(self.steps / self.latency_warmup_steps, 1.0) if self.latency_warmup_steps else 1.0
        return self.latency_weight * ramp

    def on_step(self) -> None:
        self.steps += 1

    def penalty(self, model) -> torch.Tensor:
        p = model.probabilities()
        total = torch.zeros((), device=next(iter(p.values())).device)
        if self.resource_weight > 0:
            if self._costs is None:
                self._costs = model.op_costs()
            total = total + self.resource_weight * sum((p[k] * self._costs[k]).sum() for k in p)
        if self.discretization == "binary":
            total = total + self.discretization_weight * torch.cat([(w * (1 - w)).flatten() for w in p.values()]).mean()
        elif self.discretization == "admm":
            if not self.z:
                self.update(model)
            total = total + 0.5 * self.discretization_weight * sum(
                ((p[k] - self.z[k] + self.u[k]) ** 2).sum() for k in p)
        if self.latency is not None:
            total = total + self.latency_coefficient() * torch.relu(self.latency.estimate(p) - self.latency_target)
        return total

    @torch.no_grad()
    def update(self, model) -> None:
        """ADMM's z and u updates (once per epoch); nothing for the other penalties."""
        if self.discretization != "admm":
            return
        p = model.probabilities()
        first = not self.z
        for k, w in p.items():
            u = torch.zeros_like(w) if first else self.u[k]
            z = F.one_hot((w + u).argmax(-1), w.shape[-1]).to(w.dtype)
            self.z[k] = z
            self.u[k] = u if first else u + w - z

    def state_dict(self) -> dict:
        return {"z": dict(self.z), "u": dict(self.u), "steps": self.steps}

    def load_state_dict(self, state: dict, device) -> None:
        self.z = {k: v.to(device) for k, v in (state or {}).get("z", {}).items()}
        self.u = {k: v.to(device) for k, v in (state or {}).get("u", {}).items()}
        self.steps = int((state or {}).get("steps", 0))
