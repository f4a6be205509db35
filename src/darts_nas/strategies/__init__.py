"""Search strategies: how the alphas get their gradient and when they step.

Every strategy offers ``step(model, train_batch, val_batch, w_optimizer, a_optimizer, lr, grad_clip)`` and works
on any search model of :mod:`darts_nas.spaces`.
"""

from .bilevel import Bilevel, architecture_gradient, hessian_vector_product, virtual_step, sgd_state

__all__ = ["Bilevel", "architecture_gradient", "hessian_vector_product", "virtual_step", "sgd_state"]
