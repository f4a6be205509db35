"""The architecture gradient against independent computations (float64).

Second order, exact: torch.func differentiates the whole unrolled objective
    alpha -> L_val(w - eta (momentum * buf + dL_train(w, alpha)/dw + wd * w), alpha)
end to end, with no code from the strategy; the strategy's double-backward product must agree to 1e-8.
"""

import pytest
import torch
from torch.func import functional_call, grad

from darts_nas.spaces import DartsCNNSearchModel
from darts_nas.strategies import Bilevel, architecture_gradient, hessian_vector_product

ETA, MOMENTUM, WD = 0.05, 0.9, 3e-4


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = DartsCNNSearchModel(C=4, num_classes=3, layers=3, steps=2).double()
    with torch.no_grad():  # alphas away from uniform so the op weights differ
        for a in model.arch_parameters():
            a.normal_(0, 0.5)
    return model


def batches(seed=1, n=4, size=8):
    g = torch.Generator().manual_seed(seed)
    mk = lambda: (torch.randn(n, 3, size, size, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g))
    return mk(), mk()


def momentum_buffers(model, seed=2):
    g = torch.Generator().manual_seed(seed)
    return [0.01 * torch.randn(p.shape, generator=g, dtype=torch.float64) for p in model.weight_parameters()]


def independent_second_order(model, train, val, buffers):
    """d/dalpha L_val(w'(alpha), alpha) by torch.func, from the definition alone."""
    w = {n: p.detach() for n, p in model.named_weight_parameters().items()}
    a0 = {f"alphas.{k}": v.detach() for k, v in model.alphas.items()}
    bufs = dict(zip(w, buffers))

    def loss_at(weights, alphas, batch):
        x, y = batch
        logits = functional_call(model, {**weights, **alphas}, (x,))
        return torch.nn.functional.cross_entropy(logits, y)

    def objective(alphas):
        g = grad(loss_at)(w, alphas, train)
        w2 = {n: w[n] - ETA * (MOMENTUM * bufs[n] + g[n] + WD * w[n]) for n in w}
        return loss_at(w2, alphas, val)

    out = grad(objective)(a0)
    return [out["alphas.normal"], out["alphas.reduce"]]


def rel_err(a, b):
    a = torch.cat([t.flatten() for t in a])
    b = torch.cat([t.flatten() for t in b])
    return ((a - b).norm() / b.norm()).item()


def test_second_order_exact_matches_torch_func():
    model = tiny_model()
    train, val = batches()
    buffers = momentum_buffers(model)
    ours = architecture_gradient(model, train, val, order=2, eta=ETA, momentum=MOMENTUM, weight_decay=WD,
                                 momentum_buffers=buffers, hvp="exact")
    ref = independent_second_order(model, train, val, buffers)
    assert rel_err(ours, ref) < 1e-8


def test_second_order_without_buffer_omits_momentum_term():
    model = tiny_model(3)
    train, val = batches(4)
    zeros = [torch.zeros_like(p) for p in model.weight_parameters()]
    ours = architecture_gradient(model, train, val, order=2, eta=ETA, momentum=MOMENTUM, weight_decay=WD,
                                 momentum_buffers=None, hvp="exact")
    ref = independent_second_order(model, train, val, zeros)
    assert rel_err(ours, ref) < 1e-8


def test_finite_difference_approaches_exact_as_r_shrinks():
    model = tiny_model(5)
    train, val = batches(6)
    buffers = momentum_buffers(model)
    ref = independent_second_order(model, train, val, buffers)
    errors = []
    for r in (1e-1, 1e-3, 1e-5):
        fd = architecture_gradient(model, train, val, order=2, eta=ETA, momentum=MOMENTUM, weight_decay=WD,
                                   momentum_buffers=buffers, hvp="finite-difference", r=r)
        errors.append(rel_err(fd, ref))
    assert errors[-1] < 1e-6, errors
    assert errors[-1] < errors[0], errors


def test_hessian_vector_product_methods_agree_with_dense_mixed_hessian():
    """H v by double backward against torch.func's nested grad, and the central difference (eq. 8) at a small r
    against both: two independent routes to the same mixed second derivative."""
    model = tiny_model(7)
    train, _ = batches(8)
    g = torch.Generator().manual_seed(9)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in model.weight_parameters()]
    exact = hessian_vector_product(model, train, v, "exact")
    w = {n: p.detach() for n, p in model.named_weight_parameters().items()}
    vd = dict(zip(w, v))

    def loss(weights, alphas):
        return torch.nn.functional.cross_entropy(functional_call(model, {**weights, **alphas}, (train[0],)), train[1])

    def directional(alphas):  # <dL/dw, v> as a function of alpha, by nested torch.func.grad
        g_w = grad(loss)(w, alphas)
        return sum((g_w[n] * vd[n]).sum() for n in w)

    ref = grad(directional)({f"alphas.{k}": a.detach() for k, a in model.alphas.items()})
    assert rel_err(exact, [ref["alphas.normal"], ref["alphas.reduce"]]) < 1e-10
    fd = hessian_vector_product(model, train, v, "finite-difference", r=1e-5)
    assert rel_err(fd, exact) < 1e-6


def test_first_order_equals_plain_autograd():
    model = tiny_model(11)
    train, val = batches(12)
    ours = architecture_gradient(model, train, val, order=1)
    model.zero_grad()
    x, y = val
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert rel_err(ours, [a.grad for a in model.arch_parameters()]) < 1e-14


def test_step_uses_the_optimizers_state_and_updates_both_sets():
    """A full strategy step: the alpha gradient it applies is the exact second-order one for the optimizer's
    real momentum buffer, and the weights then take a plain SGD step on the training loss."""
    model = tiny_model(13)
    train, val = batches(14)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=ETA, momentum=MOMENTUM, weight_decay=WD)
    a_opt = torch.optim.SGD(model.arch_parameters(), lr=1.0)  # plain step: alpha_new = alpha - grad
    strategy = Bilevel(order=2, hvp="exact")
    strategy.step(model, train, val, w_opt, a_opt, ETA, grad_clip=None)  # creates momentum buffers
    buffers = [w_opt.state[p]["momentum_buffer"].clone() for p in model.weight_parameters()]
    alphas_before = [a.detach().clone() for a in model.arch_parameters()]
    expected_grad = independent_second_order(model, train, val, buffers)
    w_before = {n: p.detach().clone() for n, p in model.named_weight_parameters().items()}
    strategy.step(model, train, val, w_opt, a_opt, ETA, grad_clip=None)
    got = [b - a.detach() for a, b in zip(model.arch_parameters(), alphas_before)]
    assert rel_err(got, expected_grad) < 1e-8
    # the weights moved by SGD on L_train at the NEW alphas
    with torch.no_grad():
        for a, new in zip(model.arch_parameters(), [b - g for b, g in zip(alphas_before, expected_grad)]):
            a.copy_(new)
    g_w = grad(lambda ws: torch.nn.functional.cross_entropy(
        functional_call(model, ws, (train[0],)), train[1]))(w_before)
    for (n, p), buf in zip(model.named_weight_parameters().items(), buffers):
        expected = w_before[n] - ETA * (MOMENTUM * buf + g_w[n] + WD * w_before[n])
        assert torch.allclose(p.detach(), expected, rtol=1e-6, atol=1e-9), n


def test_bad_strategy_settings_are_rejected():
    from darts_nas.errors import DartsNasError

    with pytest.raises(DartsNasError, match="order"):
        Bilevel(order=3)
    with pytest.raises(DartsNasError, match="hvp"):
        Bilevel(order=2, hvp="magic")
