"""Search strategies: how the alphas get their gradient and when they step.

Every strategy offers ``step(model, train_batch, val_batch, w_optimizer, a_optimizer, lr, grad_clip,
update_alphas=True)`` and works on any search model of :mod:`darts_nas.spaces`:

- :class:`Bilevel`: DARTS, first or second order (eq. 5-8);
- :class:`SingleLevel`: Single-DARTS and SNAS, one loss for weights and alphas on the same batch;
- :class:`Implicit`: iDARTS, the implicit-function hypergradient with a Neumann series.

When the alphas step (every weight step, every k-th, or DARTS-PRIME's Fisher-information rule) is an
:class:`ArchSchedule` of the run loop. How the alphas become op weights (softmax, sigmoid, Gumbel) is the space's relaxation, orthogonal to these; an
:class:`ArchRegularizer` (resource, discretization) adds its penalty under any of them.

Distributed runs: every gradient a strategy computes from a batch (a loss on this rank's shard) goes through
:func:`darts_nas.distributed.average` where it is computed, before anything uses it; a new strategy does the
same (tests/test_distributed.py checks each strategy against one process).
"""

from ..errors import registry_lookup
from .bilevel import (HVP_METHODS, AlternatingStep, Bilevel, alpha_step, architecture_gradient, hessian_vector_product, sgd_state, virtual_step,
                      weight_step)
from .curvature import CollapseSettings, alpha_hessian_eigenvalue
from .implicit import Implicit, implicit_gradient, neumann_inverse_hvp, weight_hessian_vector_product
from .regularizers import DISCRETIZATIONS, ArchRegularizer, discrete_target
from .schedule import ARCH_SCHEDULES, ArchSchedule
from .single_level import SingleLevel

# Every strategy: ``from_config(config, regularizer)``, ``config_problems(config, relaxation)``, ``describe()``,
# ``uses_val_batch`` and ``step(...)``, all going through weight_step / alpha_step. A new one is one more entry.
# Each also declares its settings (``settings_groups``), says ``double_backward(config)`` (whether its step
# differentiates the training gradient again, which the space must allow) and ``models_sgd_step(config)``: whether its
# hypergradient models an SGD step of the weights (then the weights' optimizer must be SGD).
STRATEGIES: dict[str, type] = {"bilevel": Bilevel, "single-level": SingleLevel, "implicit": Implicit}
# What every search runs beside its strategy, each with its settings: the alphas' penalties (resource,
# discretization, latency), their schedule, and the collapse signals.
SEARCH_PARTS = (ArchRegularizer, ArchSchedule, CollapseSettings)


def get_strategy(name: str) -> type:
    return registry_lookup(STRATEGIES, name, "strategy")


def strategy_from_config(config, regularizer=None):
    """The strategy a SearchConfig names, with its settings (and the alphas' penalty, if any)."""
    return get_strategy(config.strategy).from_config(config, regularizer)


__all__ = ["ARCH_SCHEDULES", "CollapseSettings", "SEARCH_PARTS", "ArchSchedule", "discrete_target", "HVP_METHODS", "AlternatingStep", "ArchRegularizer", "Bilevel", "DISCRETIZATIONS", "Implicit", "STRATEGIES", "SingleLevel",
           "alpha_hessian_eigenvalue", "alpha_step", "architecture_gradient", "get_strategy",
           "hessian_vector_product", "implicit_gradient", "strategy_from_config", "neumann_inverse_hvp", "sgd_state", "virtual_step",
           "weight_hessian_vector_product", "weight_step"]
