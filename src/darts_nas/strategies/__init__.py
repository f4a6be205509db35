"""Search strategies: how the alphas get their gradient and when they step.

Every strategy offers ``step(model, train_batch, val_batch, w_optimizer, a_optimizer, lr, grad_clip,
update_alphas=True)`` and works on any search model of :mod:`darts_nas.spaces`:

- :class:`Bilevel`: DARTS, first or second order (eq. 5-8);
- :class:`SingleLevel`: Single-DARTS and SNAS, one loss for weights and alphas on the same batch;
- :class:`Implicit`: iDARTS, the implicit-function hypergradient with a Neumann series.

How the alphas become op weights (softmax, sigmoid, Gumbel) is the space's relaxation, orthogonal to these; an
:class:`ArchRegularizer` (resource, discretization) adds its penalty under any of them.
"""

from ..errors import DartsNasError
from .bilevel import (AlternatingStep, Bilevel, alpha_step, architecture_gradient, hessian_vector_product, sgd_state, virtual_step,
                      weight_step)
from .curvature import alpha_hessian_eigenvalue
from .implicit import Implicit, implicit_gradient, neumann_inverse_hvp, weight_hessian_vector_product
from .regularizers import DISCRETIZATIONS, ArchRegularizer
from .single_level import SingleLevel

STRATEGIES = ("bilevel", "single-level", "implicit")


def build_strategy(name: str, *, order: int = 1, hvp: str = "finite-difference", r: float = 0.01,
                   neumann_terms: int = 2, regularizer=None, virtual_clip: float = 0.0):
    if name == "bilevel":
        return Bilevel(order=order, hvp=hvp, r=r, regularizer=regularizer, virtual_clip=virtual_clip)
    if name == "single-level":
        return SingleLevel(regularizer=regularizer)
    if name == "implicit":
        return Implicit(terms=neumann_terms, hvp=hvp, r=r, regularizer=regularizer)
    raise DartsNasError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")


__all__ = ["AlternatingStep", "ArchRegularizer", "Bilevel", "DISCRETIZATIONS", "Implicit", "STRATEGIES", "SingleLevel",
           "alpha_hessian_eigenvalue", "alpha_step", "architecture_gradient", "build_strategy",
           "hessian_vector_product", "implicit_gradient", "neumann_inverse_hvp", "sgd_state", "virtual_step",
           "weight_hessian_vector_product", "weight_step"]
