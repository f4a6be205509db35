"""Bilevel DARTS: the architecture gradient of DARTS Algorithm 1, first and second order (eq. 5-8).

    first order:   g_alpha = dL_val(w, alpha)/dalpha                                                    (eq. 5, xi = 0)
    second order:  w' = w - eta (momentum * buf + dL_train(w, alpha)/dw + weight_decay * w)           (virtual step)
                   g_alpha = dL_val(w', alpha)/dalpha - eta * H v,   v = dL_val(w', alpha)/dw'          (eq. 7)
                   H v = d^2 L_train(w, alpha)/(dalpha dw) v
                     finite difference (eq. 8): r = r0 / ||v||, (dL_train(w + r v)/dalpha - dL_train(w - r v)/dalpha) / 2r
                     exact: d/dalpha <dL_train(w, alpha)/dw, v>  (double backward)

The virtual step is the step the weight optimizer (SGD with momentum and L2 weight decay) would take; the momentum
term enters only once the optimizer has a buffer. The CNN search takes it without gradient clipping (the paper's
equation). The recurrent search clips inside it, as its weight step does (``virtual_clip``): the training gradient
is scaled by k = min(1, clip / ||g||), and since w' then moves along k g, the Hessian term is scaled by the same k
(held constant), which is the exact derivative of L_val(w - eta (k g(w, alpha) + weight_decay w), alpha).

In a distributed run each gradient of a shard's loss (the virtual step's, the direct and v terms, the
Hessian-vector product, the weights') is averaged over the ranks as soon as it is computed, so that everything
after it (norms, the virtual step, eps = r / ||v||) is the global batch's and identical on every rank.

Everything here works on any search model that follows the interface in :mod:`darts_nas.spaces` (the CNN spaces,
and the recurrent one, whose batches carry their hidden state and whose ``loss`` returns the next one), and
nothing synchronizes with the host: norms and the learning rate stay tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..distributed import average
from ..errors import DartsNasError
from ..settings import SettingsGroup, setting
from .objectives import EstimatorSettings

HVP_METHODS = ("finite-difference", "exact")


@dataclass
class HvpSettings(SettingsGroup):
    """The Hessian-vector product of the hypergradients that need one (second order, implicit)."""

    hvp: str = setting("finite-difference", "Hessian-vector product of the second order and of implicit",
                       HVP_METHODS)
    fd_r: float = setting(0.01, "finite-difference step r0 (r = r0 / ||v||)")


@dataclass
class BilevelSettings(SettingsGroup):
    """DARTS' order and the second order's own options."""

    order: int = setting(1, "bilevel: 1 first-order DARTS; 2 second order (virtual step + Hessian-vector product)",
                         (1, 2))
    hypergradient: str = setting("exact", "second order: exact (the derivative of the unrolled objective), authors "
                                 "(the DARTS authors' final recurrent computation: stale tied embedding in w', clipped v, "
                                 "finite difference at w, scaled by the unclamped clip coefficient) or authors-2018-06 "
                                 "(their first release: v plus weight decay, finite difference at w'); see the README",
                                 ("exact", "authors", "authors-2018-06"))
    virtual_step_clip: float = setting(0.0, "second order: clip the virtual step's gradient at this norm (0: off; "
                                       "the recurrent search clips at --grad-clip)")

    @classmethod
    def problems(cls, config) -> list[str]:
        return ["--virtual-step-clip cannot be negative"] if config.virtual_step_clip < 0 else []


def virtual_step(weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], eta, momentum: float = 0.0,
                 weight_decay: float = 0.0, momentum_buffers: Sequence[torch.Tensor | None] | None = None):
    """w' = w - eta (momentum * buf + g + weight_decay * w): one SGD step as torch.optim.SGD takes it
    (dampening 0, no Nesterov), computed out of place."""
    out = []
    for i, (w, g) in enumerate(zip(weights, grads)):
        d = g + weight_decay * w if weight_decay else g
        buf = momentum_buffers[i] if momentum_buffers is not None else None
        if momentum and buf is not None:
            d = d + momentum * buf
        out.append(w - eta * d)
    return out


def sgd_state(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]):
    """(momentum, weight_decay, momentum buffers) of an SGD optimizer for `params` (buffers None before the
    first step)."""
    if not isinstance(optimizer, torch.optim.SGD):
        raise DartsNasError("second-order DARTS unrolls an SGD weight optimizer; got "
                            f"{type(optimizer).__name__}")
    group = optimizer.param_groups[0]
    if group.get("nesterov") or group.get("dampening"):
        raise DartsNasError("second-order DARTS models SGD without Nesterov and dampening")
    buffers = [optimizer.state.get(p, {}).get("momentum_buffer") for p in params]
    return group["momentum"], group["weight_decay"], buffers


def check_settings(order: int = 2, hvp: str = "finite-difference") -> None:
    """The one check of a bilevel configuration, shared by the functions and the strategy."""
    if order not in (1, 2):
        raise DartsNasError(f"order must be 1 or 2, got {order}")
    if hvp not in HVP_METHODS:
        raise DartsNasError(f"unknown hvp method {hvp!r} (known: {', '.join(HVP_METHODS)})")


def _global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def hessian_vector_product(model, batch, v: Sequence[torch.Tensor], method: str = "finite-difference",
                           r: float = 0.01, train_grads: Sequence[torch.Tensor] | None = None):
    """(d^2 L(w, alpha) / dalpha dw) v, at the model's current weights w, for each alpha tensor.

    ``method="exact"`` differentiates <dL/dw, v> once more (pass `train_grads` built with ``create_graph=True``
    to reuse that graph); ``"finite-difference"`` is DARTS eq. 8 with r = r0 / ||v||.
    """
    check_settings(hvp=method)
    alphas = model.arch_parameters()
    if method == "exact":
        if train_grads is None:
            loss, _ = model.loss(batch)
            train_grads = torch.autograd.grad(loss, model.weight_parameters(), create_graph=True)
        return average(torch.autograd.grad(train_grads, alphas, grad_outputs=list(v)))
    names, weights = zip(*model.named_weight_parameters().items())
    eps = r / _global_norm(v)
    grads = []
    for sign in (1.0, -1.0):
        shifted = {n: w.detach() + (sign * eps) * vi for n, w, vi in zip(names, weights, v)}
        loss, _ = model.loss(batch, shifted)
        grads.append(torch.autograd.grad(loss, alphas))
    return average([(gp - gm) / (2 * eps) for gp, gm in zip(*grads)])


def clip_coefficient(grads: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """max_norm / (||g|| + 1e-6), unclamped (above 1 for a small gradient): the DARTS authors' final recurrent
    code scales its Hessian term by it."""
    return max_norm / (_global_norm(grads) + 1e-6)


def clip_factor(grads: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """k = min(1, max_norm / (||g|| + 1e-6)): the scale torch.nn.utils.clip_grad_norm_ applies, as a tensor."""
    return torch.clamp(clip_coefficient(grads, max_norm), max=1.0)


def architecture_gradient(model, train_batch, val_batch, *, order: int = 1, eta=0.0, momentum: float = 0.0,
                          weight_decay: float = 0.0, momentum_buffers=None, hvp: str = "finite-difference",
                          r: float = 0.01, virtual_clip: float | None = None, with_output: bool = False):
    """The gradient of the validation loss with respect to each alpha tensor, by DARTS eq. 5-8 (see module doc).

    `eta` is the weight learning rate of the current step (a float or a 0-dim tensor), `momentum`,
    `weight_decay` and `momentum_buffers` those of the weight optimizer (see :func:`sgd_state`); `virtual_clip`
    clips the gradient of the virtual step. ``with_output=True`` returns (gradients, the model output of the
    validation loss, detached): the recurrent search carries its hidden state on from it.
    """
    check_settings(order, hvp)
    alphas = model.arch_parameters()
    if order == 1:
        loss, out = model.loss(val_batch)
        grads = average(torch.autograd.grad(loss, alphas))
        return (grads, out.detach()) if with_output else grads

    names, weights = zip(*model.named_weight_parameters().items())
    # Virtual step on the training loss; keep its graph when the exact product will differentiate it again.
    train_loss, _ = model.loss(train_batch)
    train_grads = torch.autograd.grad(train_loss, weights, create_graph=(hvp == "exact"))
    step_grads = average([g.detach() for g in train_grads])
    k = clip_factor(step_grads, virtual_clip) if virtual_clip else None
    if k is not None:
        step_grads = [g * k for g in step_grads]
    unrolled = virtual_step([w.detach() for w in weights], step_grads, eta, momentum, weight_decay, momentum_buffers)
    unrolled = {n: w.requires_grad_() for n, w in zip(names, unrolled)}

    # Validation loss at w'; its gradient splits into the direct alpha term and v = dL_val/dw'.
    val_loss, out = model.loss(val_batch, unrolled)
    grads = average(torch.autograd.grad(val_loss, list(alphas) + list(unrolled.values())))
    direct, v = grads[: len(alphas)], grads[len(alphas):]

    hv = hessian_vector_product(model, train_batch, v, hvp, r, train_grads if hvp == "exact" else None)
    scale = eta if k is None else eta * k
    grads = [d - scale * h for d, h in zip(direct, hv)]
    return (grads, out.detach()) if with_output else grads


HYPERGRADIENTS = ("exact", "authors", "authors-2018-06")
AUTHORS_HYPERGRADIENTS = ("authors", "authors-2018-06")


def tied_weight_names(model) -> set[str]:
    """Names (as in ``named_weight_parameters``) of the weights that more than one module holds (the recurrent
    language model's embedding, which is also its decoder's weight)."""
    seen: dict[int, list[str]] = {}
    for name, p in model.net.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(f"net.{name}")
    return {names[0] for names in seen.values() if len(names) > 1}


def _authors_unrolled_gradients(model, train_batch, val_batch, eta, weight_decay: float, clip: float):
    """The part both releases of the DARTS authors' recurrent second order share: w' = w - eta (k g +
    weight_decay w), k = min(1, clip / (||g|| + 1e-6)), with the old value of a tied weight (they load the moved
    weights into a copy of the state dict, whose decoder entry still holds the old embedding and is loaded after
    it), and the validation loss' gradients at w'. Returns (direct alpha term, dL_val/dw', w', validation output,
    the unclamped clip coefficient of g)."""
    alphas = model.arch_parameters()
    names, weights = zip(*model.named_weight_parameters().items())
    stale = tied_weight_names(model)
    train_loss, _ = model.loss(train_batch)
    g = average(torch.autograd.grad(train_loss, weights))
    coef = clip_coefficient(g, clip)
    k = torch.clamp(coef, max=1.0)
    unrolled = {n: (w.detach() if n in stale else w.detach() - eta * (k * gi + weight_decay * w.detach()))
                for n, w, gi in zip(names, weights, g)}
    unrolled = {n: u.clone().requires_grad_() for n, u in unrolled.items()}
    val_loss, out = model.loss(val_batch, unrolled)
    grads = average(torch.autograd.grad(val_loss, list(alphas) + list(unrolled.values())))
    return grads[: len(alphas)], grads[len(alphas):], unrolled, out, coef


def authors_architecture_gradient(model, train_batch, val_batch, *, eta, weight_decay: float, clip: float,
                                  r: float = 0.01):
    """(gradient per alpha tensor, validation output): the second-order architecture gradient as the DARTS
    authors' final recurrent search computes it, the one that found their published cell (quark0/darts,
    rnn/architect.py since a00cad0, 2018-08-03; DARTS, arXiv:1806.09055). It departs from the derivative of the
    unrolled objective (:func:`architecture_gradient`):

    1. w' keeps the old value of a tied weight (:func:`_authors_unrolled_gradients`);
    2. v is the validation gradient at w' clipped to the clip norm (no weight-decay term);
    3. the Hessian-vector product is the central difference of the training loss' alpha gradient at the current
       weights w +- R v, R = r / ||v||, divided by 2R;
    4. it is subtracted as eta * c * Hv with c = clip / (||g|| + 1e-6) unclamped: above 1 when ||g|| < clip.
    """
    direct, dw, _, out, coef = _authors_unrolled_gradients(model, train_batch, val_batch, eta, weight_decay, clip)
    kv = clip_factor(dw, clip)
    v = [kv * d for d in dw]
    hv = hessian_vector_product(model, train_batch, v, "finite-difference", r)
    return [d - eta * coef * h for d, h in zip(direct, hv)], out.detach()


def authors_2018_06_architecture_gradient(model, train_batch, val_batch, *, eta, weight_decay: float, clip: float,
                                          r: float = 0.01):
    """(gradient per alpha tensor, validation output): the second-order architecture gradient of the DARTS
    authors' first code release (quark0/darts, rnn/architect.py at 8876e79, June 2018):

    1. w' keeps the old value of a tied weight (:func:`_authors_unrolled_gradients`);
    2. v is the validation gradient at w' clipped the same way, plus weight_decay * w';
    3. the Hessian-vector product is the central difference of the training loss' alpha gradient at w' +- R v
       (not at w), R = r / ||v||, divided by 2R + 1e-10, and it is subtracted as eta * Hv (no factor k).
    """
    alphas = model.arch_parameters()
    direct, dw, unrolled, out, _ = _authors_unrolled_gradients(model, train_batch, val_batch, eta, weight_decay,
                                                               clip)
    kv = clip_factor(dw, clip)
    v = [kv * d + weight_decay * u.detach() for d, u in zip(dw, unrolled.values())]
    R = r / _global_norm(v)
    sides = []
    for sign in (1.0, -1.0):
        moved = {n: u.detach() + sign * R * vi for (n, u), vi in zip(unrolled.items(), v)}
        loss, _ = model.loss(train_batch, moved)
        sides.append(average(torch.autograd.grad(loss, alphas)))
    hv = [(p - m) / (2 * R + 1e-10) for p, m in zip(*sides)]
    return [d - eta * h for d, h in zip(direct, hv)], out.detach()


AUTHORS_GRADIENTS = {"authors": authors_architecture_gradient,
                     "authors-2018-06": authors_2018_06_architecture_gradient}


def weight_step(model, train_batch, w_optimizer, grad_clip: float | None, grads=None, observe=None):
    """The weights' step of every strategy, and the one place their gradients pass: the gradient of the model's
    training objective (its loss plus any activation regularizer), clipped, one optimizer step. Weights the
    forward did not use (ops GDAS did not select) get no gradient and are left alone, as backward() would.
    Returns (loss, output), detached. A strategy that computed the gradients already (single-level, from one
    backward with the alphas') hands them in as ``grads`` and gets None back. ``observe`` receives the sum of the
    squared gradients before clipping (DARTS-PRIME's Fisher information), a device tensor."""
    weights = model.weight_parameters()
    loss = out = None
    if grads is None:
        loss, objective, out = model.training_loss(train_batch)
        grads = average(torch.autograd.grad(objective, weights, allow_unused=True), weights)
    if observe is not None:
        observe(torch.stack([g.pow(2).sum() for g in grads if g is not None]).sum())
    for w, g in zip(weights, grads):
        w.grad = g
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(weights, grad_clip, foreach=True)
    w_optimizer.step()
    return None if loss is None else (loss.detach(), out.detach())


def alpha_step(model, grads, a_optimizer, regularizer=None) -> None:
    """The alphas' step of every strategy, and the one place their gradients pass: along `grads` plus the gradient
    of the regularizer's penalty and of the space's own (if any), which depend on the alphas alone. After the step
    the model prunes (DARTS-PRIME's clamp relaxation) and the regularizer updates its state (its step count, the
    ADMM variables of DARTS-PRIME's schedule)."""
    alphas = model.arch_parameters()
    penalty = model.arch_penalty()  # the space's own term (UNAS' pair penalty), if it has one
    if regularizer is not None and regularizer.active:
        own = regularizer.penalty(model)
        penalty = own if penalty is None else penalty + own
    if penalty is not None:
        extra = torch.autograd.grad(penalty, alphas, allow_unused=True)
        grads = [g if e is None else g + e for g, e in zip(grads, extra)]
    for a, g in zip(alphas, grads):
        a.grad = g
    a_optimizer.step()
    model.prune()
    if regularizer is not None:
        regularizer.on_step(model)


class AlternatingStep:
    """The step of the bilevel strategies (DARTS Algorithm 1): (1) the alphas along the strategy's hypergradient
    of a validation batch, then (2) the weights on the training batch, with the updated alphas. A subclass gives
    ``alpha_gradient(model, train_batch, val_batch, w_optimizer, lr) -> (gradients, validation output)`` and a
    ``regularizer`` field."""

    uses_val_batch = True
    grad_observer = None  # set by the run loop for DARTS-PRIME's schedule: sees each weight step's information

    def step(self, model, train_batch, val_batch, w_optimizer, a_optimizer, lr, grad_clip: float | None,
             update_alphas: bool = True):
        """One search step; returns (training loss, training output, validation output or None), detached, on
        the device (outputs: logits, or a recurrent model's next hidden state). ``update_alphas=False`` takes the
        weight step only (the warm-up epochs of PC-DARTS)."""
        val_out = None
        if update_alphas:
            grads, val_out = self.alpha_gradient(model, train_batch, val_batch, w_optimizer, lr)
            alpha_step(model, grads, a_optimizer, self.regularizer)
        return (*weight_step(model, train_batch, w_optimizer, grad_clip, observe=self.grad_observer), val_out)


@dataclass
class Bilevel(AlternatingStep):
    """DARTS, first or second order (eq. 5-8); first order also with UNAS' estimators and generalization-gap
    objective (:mod:`.objectives`)."""

    order: int = 1
    hvp: str = "finite-difference"
    r: float = 0.01
    regularizer: object = None
    virtual_clip: float = 0.0
    estimator: str = "relaxed"
    gen_gap: float = 0.0
    hypergradient: str = "exact"

    name = "bilevel"
    settings_groups = (BilevelSettings, HvpSettings, EstimatorSettings)

    def __post_init__(self):
        check_settings(self.order, self.hvp)
        from .objectives import AlphaGradient

        if self.order == 2 and (self.estimator != "relaxed" or self.gen_gap):
            raise DartsNasError("--estimator and --gen-gap apply to first-order bilevel and single-level")
        self.alpha_grad = AlphaGradient(self.estimator, self.gen_gap)

    @classmethod
    def from_config(cls, config, regularizer=None) -> "Bilevel":
        return cls(order=config.order, hvp=config.hvp, r=config.fd_r, regularizer=regularizer,
                   virtual_clip=config.virtual_step_clip, estimator=config.estimator, gen_gap=config.gen_gap,
                   hypergradient=config.hypergradient)

    @staticmethod
    def double_backward(config) -> bool:
        """Second order with --hvp exact differentiates the training gradient once more."""
        return config.order == 2 and config.hvp == "exact"

    @staticmethod
    def models_sgd_step(config) -> bool:
        """Whether its hypergradient unrolls an SGD step of the weights (second order)."""
        return config.order == 2

    @staticmethod
    def config_problems(config, relaxation) -> list[str]:
        from .objectives import estimator_problems

        problems = estimator_problems(config, relaxation)
        if relaxation.hard and config.order == 2:
            problems.append("hard-gumbel (GDAS) evaluates one op per edge; use it with first-order bilevel or "
                            "single-level")
        if config.order == 2 and (config.estimator != "relaxed" or config.gen_gap):
            problems.append("--estimator and --gen-gap apply to first-order bilevel and single-level")
        if config.hypergradient not in HYPERGRADIENTS:
            problems.append(f"--hypergradient must be one of {', '.join(HYPERGRADIENTS)}")
        elif config.hypergradient in AUTHORS_HYPERGRADIENTS and (config.order != 2 or not config.virtual_step_clip
                                                                 or config.momentum):
            problems.append(f"--hypergradient {config.hypergradient} is the DARTS authors' recurrent second order: it "
                            "needs --order 2, --virtual-step-clip (their clip) and SGD without momentum")
        return problems

    def describe(self) -> str:
        extra = (f", {self.estimator} estimator" if self.estimator != "relaxed" else "") + \
            (f", generalization gap {self.gen_gap:g}" if self.gen_gap else "")
        if self.order == 2 and self.hypergradient in AUTHORS_HYPERGRADIENTS:
            release = ", their June 2018 release" if self.hypergradient == "authors-2018-06" else ""
            return f"bilevel order 2 (the DARTS authors' recurrent hypergradient{release})" + extra
        return f"bilevel order {self.order}" + (f" ({self.hvp})" if self.order == 2 else "") + extra

    def state_dict(self) -> dict:
        return self.alpha_grad.state_dict()

    def load_state_dict(self, state) -> None:
        self.alpha_grad.load_state_dict(state)

    def alpha_gradient(self, model, train_batch, val_batch, w_optimizer, lr):
        if self.order == 1 and (self.estimator != "relaxed" or self.gen_gap):
            return self.alpha_grad(model, train_batch, val_batch)
        momentum, weight_decay, buffers = (sgd_state(w_optimizer, model.weight_parameters()) if self.order == 2
                                           else (0.0, 0.0, None))
        if self.order == 2 and self.hypergradient in AUTHORS_HYPERGRADIENTS:
            return AUTHORS_GRADIENTS[self.hypergradient](model, train_batch, val_batch, eta=lr,
                                                         weight_decay=weight_decay, clip=self.virtual_clip, r=self.r)
        return architecture_gradient(model, train_batch, val_batch, order=self.order, eta=lr, momentum=momentum,
                                     weight_decay=weight_decay, momentum_buffers=buffers, hvp=self.hvp, r=self.r,
                                     virtual_clip=self.virtual_clip or None, with_output=True)
