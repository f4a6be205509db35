"""What the alphas minimize, and how its gradient is estimated, for the first-order bilevel and the single-level
strategies (UNAS, arXiv:1912.07651):

- the objective: the validation loss (bilevel) or the training loss (single-level); with ``gen_gap`` = lambda > 0,
  UNAS' generalization-gap objective mean_i [L_train_i + lambda |L_val_i - L_train_i|], training example i paired
  with validation example i (so single-level then reads a validation batch too);
- the estimator (darts_nas.strategies.estimators): ``relaxed`` differentiates the objective at the relaxation's own sample
  (softmax, sigmoid, or SNAS/GDAS' Gumbel sample: what every strategy did before); ``reinforce`` and ``unas``
  sample one op per edge from softmax(alpha) and use the score function (UNAS with the relaxed objective as control
  variate and REBAR's correction), so that the objective at the discrete architecture need not be differentiable.

Every gradient is averaged over the ranks of a distributed run where it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributed import all_sum, average, world_size
from ..errors import DartsNasError
from .estimators import ESTIMATORS, MovingBaseline, draw, uniform
from ..settings import SettingsGroup, setting


@dataclass
class EstimatorSettings(SettingsGroup):
    """How the alphas' gradient is estimated and UNAS' objective, for the strategies that offer them."""

    estimator: str = setting("relaxed", "the alphas' gradient (first-order bilevel, single-level): relaxed "
                             "(differentiate the relaxation's sample), reinforce (score function, moving baseline) or "
                             "unas (score function with the relaxed loss as control variate and REBAR's correction; "
                             "UNAS); the last two need --relaxation gumbel or hard-gumbel", ESTIMATORS)
    gen_gap: float = setting(0.0, "UNAS' generalization-gap objective for the alphas: L_train + GEN_GAP |L_val - "
                             "L_train| per example (UNAS: 0.5; 0: off)")

    @classmethod
    def problems(cls, config) -> list[str]:
        problems = []
        space = config.search_space()
        if config.gen_gap and space is not None and not space.per_example_losses:
            problems.append(f"--gen-gap pairs training and validation examples; the {config.space} space's "
                            "batches are not independent examples")
        if (config.estimator != "relaxed" or config.gen_gap) and config.cuda_graphs:
            problems.append("--estimator and --gen-gap are not captured in CUDA graphs: drop --cuda-graphs")
        return problems


def alpha_objective(model, train_batch, val_batch, gen_gap: float = 0.0, single_level: bool = False):
    """(objective, output of the batch the alphas read): the loss the alphas descend at the model's current op
    weights (the relaxation's, or those fixed by ``model.fixed_op_weights``)."""
    if not gen_gap:
        loss, out = model.loss(train_batch if single_level else val_batch)
        return loss, out
    train, _ = model.example_losses(train_batch)
    val, out = model.example_losses(val_batch)
    n = min(train.shape[0], val.shape[0])
    train, val = train[:n], val[:n]
    return (train + gen_gap * (val - train).abs()).mean(), out


def estimator_problems(config, relaxation, model_class=None) -> list[str]:
    """The rules of --estimator and --gen-gap on a configuration (shared by the strategies that offer them)."""
    problems = []
    if config.estimator not in ESTIMATORS:
        problems.append(f"unknown --estimator {config.estimator!r} (known: {', '.join(ESTIMATORS)})")
    elif config.estimator != "relaxed":
        if relaxation.name not in ("gumbel", "hard-gumbel"):
            problems.append(f"--estimator {config.estimator} samples one op per edge from softmax(alpha): use it with "
                            "--relaxation gumbel or hard-gumbel")
        if config.edge_normalization or config.max_w:
            problems.append(f"--estimator {config.estimator} estimates the gradient of the op distribution only; "
                            "drop --edge-normalization and --max-w")
    if config.gen_gap < 0:
        problems.append("--gen-gap cannot be negative")
    return problems


class AlphaGradient:
    """The alphas' gradient of :func:`alpha_objective` by the chosen estimator; holds REINFORCE's baseline."""

    def __init__(self, estimator: str = "relaxed", gen_gap: float = 0.0, single_level: bool = False):
        if estimator not in ESTIMATORS:
            raise DartsNasError(f"unknown estimator {estimator!r} (known: {', '.join(ESTIMATORS)})")
        self.estimator, self.gen_gap, self.single_level = estimator, gen_gap, single_level
        self.baseline = MovingBaseline()

    def objective(self, model, train_batch, val_batch):
        return alpha_objective(model, train_batch, val_batch, self.gen_gap, self.single_level)

    def __call__(self, model, train_batch, val_batch):
        """(gradient per alpha tensor, the objective's output), averaged over the ranks."""
        alphas = model.arch_parameters()
        if self.estimator == "relaxed":
            value, out = self.objective(model, train_batch, val_batch)
            return average(torch.autograd.grad(value, alphas, allow_unused=True), alphas), out.detach()
        named = dict(model.alphas.items())
        tau = model.temperature
        samples = {n: draw(a, tau, uniform(a.shape, None, a.device, a.dtype), uniform(a.shape, None, a.device, a.dtype))
                   for n, a in named.items()}
        log_q = sum(s.log_q for s in samples.values())
        with torch.no_grad(), model.fixed_op_weights({n: s.b for n, s in samples.items()}, hard=True):
            f_b, out = self.objective(model, train_batch, val_batch)
        if self.estimator == "reinforce":
            value = (f_b - self.baseline.value) * log_q
        else:
            with model.fixed_op_weights({n: s.zeta_cond for n, s in samples.items()}):
                h_cond, _ = self.objective(model, train_batch, val_batch)
            with model.fixed_op_weights({n: s.zeta for n, s in samples.items()}):
                h, _ = self.objective(model, train_batch, val_batch)
            value = (f_b - h_cond.detach()) * log_q + h - h_cond
        grads = average(torch.autograd.grad(value, alphas, allow_unused=True), alphas)
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads)]
        # The baseline follows the ranks' mean f(b), so it stays the same on every rank (one read per step).
        self.baseline.update(all_sum(f_b.detach()).item() / world_size())
        return grads, out.detach()

    def state_dict(self) -> dict:
        return {"baseline": self.baseline.value, "seen": self.baseline.seen}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.baseline.value, self.baseline.seen = float(state["baseline"]), bool(state["seen"])
