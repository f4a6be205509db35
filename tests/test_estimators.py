"""The architecture-distribution gradient estimators against the exact gradient of E_q[f], computed by enumerating
every architecture of a tiny space (2 edges x 3 ops): REINFORCE and UNAS are unbiased for a smooth and for a
non-differentiable f, the relaxed (Gumbel-softmax) estimator is not, and its bias shrinks with the temperature;
the conditional Gumbel sample keeps the argmax and, pooled over b, has the unconditional Gumbel mean."""

from __future__ import annotations

import pytest
import torch

from darts_nas.errors import DartsNasError
from darts_nas.strategies.estimators import MovingBaseline, draw, exact_gradient, per_sample_gradients, surrogate, uniform

S = 20000
g0 = torch.Generator().manual_seed(0)
ALPHA = torch.randn(2, 3, dtype=torch.float64, generator=g0)
C = torch.randn(2, 3, dtype=torch.float64, generator=g0)
D = torch.randn(2, 3, dtype=torch.float64, generator=g0)
T = 3 * torch.randn(3, 3, dtype=torch.float64, generator=g0)


def smooth(w):
    """Linear plus a product across the two edges: the relaxation changes its expectation."""
    return (w * C).sum((-2, -1)) + 2 * (w[..., 0, :] * D[0]).sum(-1) * (w[..., 1, :] * D[1]).sum(-1)


def stepped(b):
    """Non-differentiable: a table of the two choices, floored (like a measured latency in whole ms)."""
    return torch.floor(b[..., 0, :] @ T @ b[..., 1, :])


def surrogate_of_stepped(w):
    """A differentiable control variate for `stepped` (its table without the floor)."""
    return w[..., 0, :] @ T @ w[..., 1, :]


def standard_errors(method, f_discrete, f_relaxed=None, tau=0.5, baseline=0.0, seed=1):
    grads = per_sample_gradients(method, ALPHA, f_discrete, f_relaxed, S, tau, baseline,
                                 torch.Generator().manual_seed(seed))
    exact = exact_gradient(ALPHA, f_discrete)
    return ((grads.mean(0) - exact).abs() / (grads.std(0) / S ** 0.5)).max().item(), grads


@pytest.mark.parametrize("method,f_discrete,f_relaxed,baseline", [
    ("reinforce", smooth, None, 0.0), ("reinforce", smooth, None, 1.5), ("unas", smooth, smooth, 0.0),
    ("reinforce", stepped, None, 0.0), ("unas", stepped, surrogate_of_stepped, 0.0), ("unas", stepped, smooth, 0.0)])
def test_unbiased_estimators_match_the_enumerated_gradient(method, f_discrete, f_relaxed, baseline):
    errors, _ = standard_errors(method, f_discrete, f_relaxed, baseline=baseline)
    assert errors < 4.0  # every element of the mean within 4 standard errors of the exact gradient


def test_the_relaxed_estimator_is_biased_and_its_bias_shrinks_with_the_temperature():
    errors, _ = standard_errors("relaxed", smooth, smooth, tau=1.0)
    assert errors > 8.0  # the gradient of E[f(zeta)], not of E[f(b)]
    linear = lambda w: (w * C).sum((-2, -1))  # noqa: E731
    exact = exact_gradient(ALPHA, linear)
    bias = [(per_sample_gradients("relaxed", ALPHA, linear, linear, S, tau, 0.0,
                                  torch.Generator().manual_seed(2)).mean(0) - exact).abs().max().item()
            for tau in (1.0, 0.3, 0.1)]
    assert bias[0] > bias[1] > bias[2]


def test_unas_has_lower_variance_than_reinforce_at_a_moderate_temperature():
    # Measured (darts-nas bench estimators): at tau = 1 UNAS' total variance is 0.63 of plain REINFORCE's on this
    # f; at tau = 0.1 its pathwise terms make it 3.4 times larger. The claim holds only for moderate tau.
    _, reinforce = standard_errors("reinforce", stepped, tau=1.0)
    _, unas = standard_errors("unas", stepped, surrogate_of_stepped, tau=1.0)
    assert unas.var(0).sum() < 0.8 * reinforce.var(0).sum()


def test_the_conditional_sample_keeps_the_argmax_and_the_gumbel_marginal():
    g = torch.Generator().manual_seed(5)
    u, v = uniform((S, 2, 3), g, dtype=torch.float64), uniform((S, 2, 3), g, dtype=torch.float64)
    s = draw(ALPHA, 1.0, u, v)
    assert torch.equal(s.zeta_cond.argmax(-1), s.b.argmax(-1)) and torch.equal(s.zeta.argmax(-1), s.b.argmax(-1))
    # tau = 1: zeta~ = softmax(z~); recover z~ up to its per-row constant from log zeta~ and compare the pooled
    # differences z~_i - z~_0 with those of an unconditional Gumbel-perturbed theta (mean theta_i - theta_0).
    theta = torch.log_softmax(ALPHA, -1)
    diffs = torch.log(s.zeta_cond) - torch.log(s.zeta_cond[..., :1])
    se = diffs.std(0) / S ** 0.5
    assert ((diffs.mean(0) - (theta - theta[..., :1])).abs() <= 4 * se + 1e-12).all()
    assert torch.allclose(s.log_q, (theta * s.b).sum((-2, -1)))


def test_surrogate_checks_and_baseline():
    s = draw(ALPHA, 0.5, uniform((2, 3)).double(), uniform((2, 3)).double())
    with pytest.raises(DartsNasError, match="unknown estimator"):
        surrogate("magic", s, smooth)
    with pytest.raises(DartsNasError, match="control variate"):
        surrogate("unas", s, stepped)
    b = MovingBaseline(decay=0.1)
    b.update(2.0)
    b.update(4.0)
    assert b.value == pytest.approx(0.1 * 2.0 + 0.9 * 4.0)


# ----------------------------------------------------------------------------------------------------------------
# in a search: AlphaGradient on a supernet, the generalization-gap objective, settings, resume
# ----------------------------------------------------------------------------------------------------------------
def toy_model_and_batches():
    from toy_space import ToySearchModel

    torch.manual_seed(0)
    model = ToySearchModel(C=3, num_classes=3, edges=2, relaxation="gumbel").double()
    with torch.no_grad():
        model.alphas["chain"].copy_(torch.tensor([[0.3, -0.2, 0.5], [-0.4, 0.1, 0.2]]))
    g = torch.Generator().manual_seed(1)
    batch = lambda: (torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64),  # noqa: E731
                     torch.randint(0, 3, (4,), generator=g))
    return model, batch(), batch()


@pytest.mark.parametrize("method", ["reinforce", "unas"])
def test_the_search_estimators_are_unbiased_on_a_supernet(method):
    """E_q[f(b)], f the validation loss of the supernet at the discrete cell b, by enumerating its 9 cells."""
    from darts_nas.strategies.objectives import AlphaGradient

    model, train, val = toy_model_and_batches()
    alpha = model.alphas["chain"]

    def f(b):
        with torch.no_grad(), model.fixed_op_weights({"chain": b}, hard=True):
            return model.loss(val)[0]

    exact = exact_gradient(alpha.detach(), f)
    estimate = AlphaGradient(method)
    estimate.baseline.value, estimate.baseline.seen = float(f(torch.eye(3)[[0, 0]].double())), True
    estimate.baseline.decay = 1.0  # a constant baseline: the moving one would follow the samples
    torch.manual_seed(3)
    grads = torch.stack([estimate(model, train, val)[0][0] for _ in range(1500)])
    se = grads.std(0) / 1500 ** 0.5
    assert ((grads.mean(0) - exact).abs() <= 4 * se + 1e-9).all(), (grads.mean(0), exact, se)


def test_generalization_gap_objective_by_hand():
    from torch.func import grad

    from darts_nas.spaces.relaxation import get_relaxation
    from darts_nas.strategies.objectives import AlphaGradient, alpha_objective

    model, train, val = toy_model_and_batches()
    model.set_temperature(1.0)
    weights = {"chain": torch.softmax(model.alphas["chain"], -1)}

    def by_hand(alpha):
        w = {"chain": torch.softmax(alpha, -1)}
        with model.fixed_op_weights(w):
            lt = torch.nn.functional.cross_entropy(model(train[0]), train[1], reduction="none")
            lv = torch.nn.functional.cross_entropy(model(val[0]), val[1], reduction="none")
        return (lt + 0.5 * (lv - lt).abs()).mean()

    with model.fixed_op_weights(weights):
        value, _ = alpha_objective(model, train, val, gen_gap=0.5)
    assert value.item() == pytest.approx(by_hand(model.alphas["chain"].detach()).item(), rel=1e-12)
    # The relaxed estimator's gradient of it at a softmax relaxation equals torch.func's gradient of the hand form.
    model.relaxation = get_relaxation("softmax")
    got, _ = AlphaGradient("relaxed", gen_gap=0.5)(model, train, val)
    assert torch.allclose(got[0], grad(by_hand)(model.alphas["chain"].detach()), rtol=1e-10, atol=1e-12)


def test_estimator_settings_are_checked():
    from darts_nas.config import preset_config

    for kw, message in [(dict(estimator="unas"), "use it with --relaxation gumbel or hard-gumbel"),
                        (dict(estimator="reinforce", relaxation="gumbel", order=2), "first-order bilevel"),
                        (dict(gen_gap=0.5, strategy="implicit"), "first-order bilevel and single-level"),
                        (dict(gen_gap=0.5, space="darts-rnn", dataset="ptb"), "not independent examples"),
                        (dict(gen_gap=-1.0), "--gen-gap cannot be negative")]:
        with pytest.raises(DartsNasError, match=message):
            preset_config("darts-cifar10", **kw).validate()


def test_a_search_with_the_reinforce_estimator_and_the_unas_gap_resumes_exactly(tmp_path):
    from darts_nas.cli import main

    args = ["search", "--preset", "darts-nb201", "--dataset", "synthetic", "--synthetic-size", "32", "--batch-size",
            "8", "--channels", "4", "--cells-per-stage", "1", "--epochs", "2", "--relaxation", "gumbel",
            "--estimator", "reinforce", "--gen-gap", "0.5", "--strategy", "single-level", "--device", "cpu",
            "--no-progress", "--hessian-every", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--stop-after", "1"]) == 0
    assert main(["search", "--resume", str(tmp_path / "b")]) == 0
    from darts_nas.run.checkpoint import load_checkpoint

    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["strategy"] == b["strategy"] and a["strategy"]["seen"]
