"""Penalties on the alphas that any strategy adds to the architecture objective.

- Resource (SNAS): ``weight * sum_edges sum_k p_k cost_k``, the expected parameter count (millions) of the cell
  under the op distribution p = softmax(alpha) (sigmoid for the independent relaxation).
- Discretization, toward a discrete architecture (the constrained-bilevel abstract):
  ``binary``: ``weight * mean(p (1 - p))``, zero exactly when every op weight is 0 or 1;
  ``admm``: ``weight / 2 * ||p - z + u||^2``, the augmented-Lagrangian term of ADMM for the constraint p = z with
  z one-hot per edge; once per epoch z <- one_hot(argmax(p + u)) (the projection onto discrete cells) and
  u <- u + p - z (the scaled dual ascent).
  ``proximity`` (DARTS-PRIME, arXiv:2106.11655, as its authors' code computes it, k8lion/DARTS-PRIME @4953e40):
  ``ramp * weight / 2 * ||p - d||_F`` per alpha matrix (the norm itself, not its square), d the one-hot of the
  currently derived cell (its kept edges' ops; a dropped edge's row is all zeros) without gradient, ramp = t / T
  the fraction of the run's training steps done (set by the run loop every step);
  ``admm-prime``: DARTS-PRIME's ADMM, ``weight / 2 * ||(p - z + u) * alive||_F`` (not squared), z starting at the
  raw alphas and u at 0; every ``admm_every`` alpha steps z <- d(act(alpha + u)) and u <- (u + alpha - z) * alive
  with the raw alphas (the authors' code: its flag 10 fires every 9 alpha steps).
- Latency (UNAS): ``c_t relu(estimate(p) - target)``, estimate the linear surrogate of a measured latency table
  (:mod:`darts_nas.strategies.latency`), c_t = weight * min(alpha steps / warm-up steps, 1).

All of it is tensor arithmetic on the device; the ADMM state is saved with the run's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DartsNasError
from .latency import LatencySettings
from ..settings import SettingsGroup, setting
from .schedule import BOUNDS_MESSAGE

DISCRETIZATIONS = ("none", "binary", "admm", "proximity", "admm-prime")
NEGATIVE_MESSAGE = "penalty weights, --hessian-every and the stop thresholds cannot be negative"


@dataclass
class RegularizerSettings(SettingsGroup):
    """The resource and discretization penalties' settings (the latency penalty's are LatencySettings)."""

    resource_weight: float = setting(0.0, "SNAS resource penalty: weight of the expected parameter count "
                                     "(millions)", space_setting=True)
    discretization: str = setting("none", "penalty toward a discrete cell: binary (sum p(1-p)), admm, proximity "
                                  "(DARTS-PRIME: ramped distance to the derived cell) or admm-prime (DARTS-PRIME's "
                                  "ADMM)", DISCRETIZATIONS)
    discretization_weight: float = setting(0.0, "weight of --discretization (the ADMM / proximity rho; DARTS-PRIME: "
                                           "0.1)")
    admm_every: int = setting(10, "--discretization admm-prime: alpha steps between the z, u updates (the authors' "
                              "code updates every 9 with its flag at 10)")

    @classmethod
    def problems(cls, config) -> list[str]:
        problems = [NEGATIVE_MESSAGE] if min(config.resource_weight, config.discretization_weight) < 0 else []
        if (config.discretization != "none") != (config.discretization_weight > 0):
            problems.append("--discretization and --discretization-weight go together (a penalty and its weight)")
        if config.admm_every < 1:
            problems.append(BOUNDS_MESSAGE)
        if config.discretization in ("proximity", "admm-prime") and config.cuda_graphs:
            problems.append(f"--discretization {config.discretization} derives the current cell on the host each "
                            "alpha step: no --cuda-graphs")
        space = config.search_space()
        if config.discretization == "proximity" and space is not None and space.data_kind != "images":
            problems.append("--discretization proximity (ramped over the image search's steps) applies to image "
                            "searches")
        return problems


@torch.no_grad()
def discrete_target(model, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DARTS-PRIME's disc(): the one-hot rows of the cell the space derives, with the `none` column (a dropped
    edge) zeroed, so a dropped edge's row is all zeros. `weights` are the op weights derived from (the model's own
    when they are its probabilities)."""
    derived = model.derived_weights(weights)
    columns = model.columns()
    out = {}
    for name, d in derived.items():
        d = d.clone()
        if "none" in columns[name]:
            d[:, columns[name].index("none")] = 0.0
        out[name] = d
    return out


class ArchRegularizer:
    settings_groups = (RegularizerSettings, LatencySettings)

    def __init__(self, resource_weight: float = 0.0, discretization: str = "none",
                 discretization_weight: float = 0.0, latency=None, latency_target: float = 0.0,
                 latency_weight: float = 0.0, latency_warmup_steps: int = 0, admm_every: int = 10):
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
        self.admm_every = admm_every
        self.admm_count = 0  # alpha steps since the last z, u update (admm-prime)
        self.progress = 0.0  # proximity: t / T, set by the run loop before each step (set_progress)
        self.ramp = None     # ... and its 0-dim device tensor, filled in place

    @property
    def needs_progress(self) -> bool:
        return self.discretization == "proximity"

    def set_progress(self, fraction: float) -> None:
        """t / T of the proximity ramp: the fraction of the run's training steps begun (filled in place, so a
        captured step sees it)."""
        self.progress = float(fraction)
        if self.ramp is not None:
            self.ramp.fill_(self.progress)

    @property
    def active(self) -> bool:
        return self.resource_weight > 0 or self.discretization != "none" or self.latency is not None

    def latency_coefficient(self) -> float:
        """c_t: the latency weight, ramped linearly over the warm-up steps."""
        ramp = min(self.steps / self.latency_warmup_steps, 1.0) if self.latency_warmup_steps else 1.0
        return self.latency_weight * ramp

    def on_step(self, model) -> None:
        """After each alpha step: count it; DARTS-PRIME's ADMM updates z and u every admm_every steps."""
        self.steps += 1
        if self.discretization == "admm-prime":
            self.admm_count += 1
            if self.admm_count >= self.admm_every:
                self.admm_count = 0
                self.update_prime(model)

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
        elif self.discretization == "proximity":
            if self.ramp is None:
                self.ramp = torch.tensor(self.progress, device=total.device)
            target = discrete_target(model, {k: w.detach() for k, w in p.items()})
            total = total + self.ramp * (0.5 * self.discretization_weight) * sum(
                torch.linalg.vector_norm(p[k] - target[k]) for k in p)
        elif self.discretization == "admm-prime":
            if not self.z:
                self.z = {k: a.detach().clone() for k, a in model.alphas.items()}
                self.u = {k: torch.zeros_like(a) for k, a in model.alphas.items()}
            alive = model.alive_masks() or {}
            total = total + (0.5 * self.discretization_weight) * sum(
                torch.linalg.vector_norm((p[k] - self.z[k] + self.u[k]) * alive.get(k, 1.0)) for k in p)
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

    @torch.no_grad()
    def update_prime(self, model) -> None:
        """DARTS-PRIME's ADMM update: z <- disc(act(alpha + u)), u <- (u + alpha - z) * alive, raw alphas."""
        if not self.z:
            return
        shifted = {k: model.relaxation.probabilities(a + self.u[k]) for k, a in model.alphas.items()}
        self.z = discrete_target(model, shifted)
        alive = model.alive_masks() or {}
        self.u = {k: (self.u[k] + a - self.z[k]) * alive.get(k, 1.0) for k, a in model.alphas.items()}

    def state_dict(self) -> dict:
        return {"z": dict(self.z), "u": dict(self.u), "steps": self.steps, "admm_count": self.admm_count}

    def load_state_dict(self, state: dict, device) -> None:
        self.z = {k: v.to(device) for k, v in (state or {}).get("z", {}).items()}
        self.u = {k: v.to(device) for k, v in (state or {}).get("u", {}).items()}
        self.steps = int((state or {}).get("steps", 0))
        self.admm_count = int((state or {}).get("admm_count", 0))
