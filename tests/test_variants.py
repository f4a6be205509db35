"""The DARTS variants: relaxations (sigmoid, Gumbel, hard Gumbel, Max-W), single-level and implicit strategies,
the alpha regularizers, Cosine Power Annealing, the Hessian eigenvalue signal, and the run loop's collapse
signals, each against an independent computation."""


import numpy as np
import pytest
import torch
from torch.func import functional_call

from darts_nas.config import SearchConfig, preset_config
from darts_nas.errors import DartsNasError
from darts_nas.spaces.relaxation import get_relaxation, gumbel_softmax, hard_gumbel, max_w
from darts_nas.run import resume_search, start_search
from darts_nas.spaces import DartsCNNSearchModel, NB201SearchModel
from darts_nas.strategies import (ArchRegularizer, SingleLevel, alpha_hessian_eigenvalue, implicit_gradient,
                                  neumann_inverse_hvp)


# -- relaxations ------------------------------------------------------------------------------------------------
def test_hard_gumbel_is_one_hot_with_the_right_marginals():
    torch.manual_seed(0)
    alpha = torch.tensor([[1.0, 0.0, -1.0, 0.5, 2.0]])
    n = 40000
    samples = hard_gumbel(alpha.expand(n, 5), torch.tensor(1.0))
    assert torch.equal(samples.sum(-1), torch.ones(n))
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    freq = samples.mean(0)
    torch.testing.assert_close(freq, torch.softmax(alpha, -1)[0], atol=0.01, rtol=0)


def test_hard_gumbel_gradient_is_the_soft_samples():
    alpha = torch.randn(6, 5, requires_grad=True)
    c = torch.randn(6, 5)
    torch.manual_seed(3)
    (hard_gumbel(alpha, 0.5) * c).sum().backward()
    g_hard = alpha.grad.clone()
    alpha.grad = None
    torch.manual_seed(3)
    (gumbel_softmax(alpha, 0.5) * c).sum().backward()
    torch.testing.assert_close(g_hard, alpha.grad)


def test_gumbel_softmax_by_hand_and_temperature():
    alpha = torch.randn(3, 5)
    torch.manual_seed(1)
    u = torch.rand(3, 5)
    expected = torch.softmax((alpha - torch.log(-torch.log(u))) / 0.7, -1)
    torch.manual_seed(1)
    torch.testing.assert_close(gumbel_softmax(alpha, 0.7), expected)
    torch.manual_seed(2)
    cold = gumbel_softmax(alpha, 1e-3)
    assert torch.allclose(cold.max(-1).values, torch.ones(3), atol=1e-3)


def test_sigmoid_and_max_w():
    alpha = torch.tensor([[0.0, 1.0, -2.0]])
    torch.testing.assert_close(get_relaxation("sigmoid").weights(alpha, None), 1 / (1 + torch.exp(-alpha)))
    w = torch.tensor([[0.2, 0.5, 0.3]], requires_grad=True)
    out = max_w(w)
    torch.testing.assert_close(out, torch.tensor([[0.7, 1.0, 0.8]]))
    out.sum().backward()  # the max is not detached (sharpDARTS' code): d/dw_k = 1 - 3 [k is the argmax]
    torch.testing.assert_close(w.grad, torch.tensor([[1.0, -2.0, 1.0]]))
    with pytest.raises(DartsNasError, match="unknown relaxation"):
        get_relaxation("tanh")


@pytest.mark.parametrize("space", ["nb201", "darts-cnn"])
def test_hard_gumbel_evaluates_one_op_per_edge(space):
    torch.manual_seed(0)
    if space == "nb201":
        model = NB201SearchModel(C=4, cells_per_stage=1, relaxation="hard-gumbel")
        edges = [e for cell in model.net.cells() for e in cell.edges]
    else:
        model = DartsCNNSearchModel(C=4, layers=3, relaxation="hard-gumbel")
        edges = [e for cell in model.net.cells for e in cell.edges]
    calls = []
    for e, edge in enumerate(edges):
        for op in edge.ops:
            op.register_forward_hook(lambda m, i, o, e=e: calls.append(e))
    model(torch.randn(2, 3, 16, 16))
    counts = [calls.count(e) for e in range(len(edges))]
    assert max(counts) <= 1  # `none` runs no module, every other selection exactly one
    assert sum(counts) >= 1


# -- single level -----------------------------------------------------------------------------------------------
def test_single_level_step_by_hand():
    """One Single-DARTS step: SGD on the weights and Adam on the alphas, both from the gradient of the same
    training loss, computed here independently with torch.func on a copy."""
    torch.manual_seed(0)
    model = NB201SearchModel(C=4, cells_per_stage=1, relaxation="sigmoid").double()
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))
    params = {n: p.detach().clone() for n, p in model.named_parameters()}

    def loss_fn(p):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    grads = torch.func.grad(loss_fn)(params)
    lr, wd, a_lr, a_wd = 0.05, 1e-3, 3e-3, 1e-2
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=a_lr, betas=(0.5, 0.999), weight_decay=a_wd)
    SingleLevel().step(model, (x, y), None, w_opt, a_opt, lr, grad_clip=None)
    for n, p in model.named_parameters():
        g = grads[n] + (a_wd if n.startswith("alphas") else wd) * params[n]
        if n.startswith("alphas"):  # Adam's first step: lr * m_hat / (sqrt(v_hat) + eps) = lr * g / (|g| + eps)
            expected = params[n] - a_lr * g / (g.abs() + 1e-8)
        else:
            expected = params[n] - lr * g
        torch.testing.assert_close(p.detach(), expected, msg=n)


# -- iDARTS: the Neumann series on a quadratic problem ------------------------------------------------------------
class Quadratic(torch.nn.Module):
    """L_train = 1/2 w'Aw - w'Ba + 1/2 |a|^2, L_val = 1/2 |w - t|^2 + d'a: every derivative is known exactly."""

    def __init__(self, n=5, m=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q = torch.randn(n, n, generator=g, dtype=torch.float64)
        self.A = q @ q.T / n + 0.5 * torch.eye(n, dtype=torch.float64)
        self.B = torch.randn(n, m, generator=g, dtype=torch.float64)
        self.t = torch.randn(n, generator=g, dtype=torch.float64)
        self.d = torch.randn(m, generator=g, dtype=torch.float64)
        self.w = torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))
        self.a = torch.nn.Parameter(torch.randn(m, generator=g, dtype=torch.float64))

    def named_weight_parameters(self):
        return {"w": self.w}

    def weight_parameters(self):
        return [self.w]

    def arch_parameters(self):
        return [self.a]

    def loss(self, batch, weights=None):
        w = self.w if weights is None else weights["w"]
        if batch == "train":
            return 0.5 * w @ self.A @ w - w @ self.B @ self.a + 0.5 * self.a @ self.a, None
        return 0.5 * (w - self.t) @ (w - self.t) + self.d @ self.a, None


@pytest.mark.parametrize("hvp", ["exact", "finite-difference"])
@pytest.mark.parametrize("terms", [1, 2, 5])
def test_neumann_series_matches_its_closed_form(terms, hvp):
    model = Quadratic()
    eta, wd = 0.3, 0.1
    A = model.A.numpy() + wd * np.eye(5)
    v = (model.w - model.t).detach().numpy()
    p = eta * sum(np.linalg.matrix_power(np.eye(5) - eta * A, k) @ v for k in range(terms))
    expected = model.d.numpy() + model.B.numpy().T @ p  # dL_val/da - (d^2 L_train/da dw) p, cross term = -B'
    got = implicit_gradient(model, "train", "val", eta=eta, terms=terms, weight_decay=wd, hvp=hvp)[0]
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-6, atol=1e-8)


def test_neumann_series_converges_to_the_inverse_hessian():
    model = Quadratic()
    A = model.A
    v = [torch.randn(5, dtype=torch.float64)]
    eta = 1.0 / torch.linalg.eigvalsh(A).max().item()
    approx = neumann_inverse_hvp(lambda u: [A @ u[0]], v, eta, terms=400)[0]
    torch.testing.assert_close(approx, torch.linalg.solve(A, v[0]), rtol=1e-6, atol=1e-8)
    exact = implicit_gradient(model, "train", "val", eta=eta, terms=400, hvp="exact")[0]
    closed = model.d + model.B.T @ torch.linalg.solve(A, (model.w - model.t).detach())
    torch.testing.assert_close(exact.detach(), closed, rtol=1e-6, atol=1e-8)


# -- the Hessian eigenvalue -------------------------------------------------------------------------------------
def test_dominant_eigenvalue_matches_a_dense_eigendecomposition():
    torch.manual_seed(0)
    model = NB201SearchModel(C=3, cells_per_stage=1).double()
    with torch.no_grad():
        model.alphas["cell"].normal_(0, 0.5)
    batch = (torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,)))

    def loss_of_alpha(a):
        return torch.nn.functional.cross_entropy(functional_call(model, {"alphas.cell": a}, (batch[0],)), batch[1])

    H = torch.autograd.functional.hessian(loss_of_alpha, model.alphas["cell"].detach()).reshape(30, 30)
    eig = torch.linalg.eigvalsh(H)
    dominant = eig[eig.abs().argmax()].item()
    got = alpha_hessian_eigenvalue(model, [batch], iters=2000, tol=1e-12, generator=torch.Generator().manual_seed(0))
    assert got == pytest.approx(dominant, rel=1e-4)


# -- regularizers -----------------------------------------------------------------------------------------------
def test_resource_penalty_gradient_by_hand():
    model = NB201SearchModel(C=4, cells_per_stage=1)
    with torch.no_grad():
        model.alphas["cell"].normal_()
    reg = ArchRegularizer(resource_weight=2.0)
    penalty = reg.penalty(model)
    p = torch.softmax(model.alphas["cell"].detach(), -1)
    c = model.op_costs()["cell"]
    assert penalty.item() == pytest.approx(2.0 * (p * c).sum().item())
    (g,) = torch.autograd.grad(penalty, model.alphas["cell"])
    # d/da_k sum_j p_j c_j = p_k (c_k - sum_j p_j c_j)
    torch.testing.assert_close(g, 2.0 * p * (c - (p * c).sum(-1, keepdim=True)))


def test_discretization_penalties_by_hand():
    model = NB201SearchModel(C=4, cells_per_stage=1, relaxation="sigmoid")
    with torch.no_grad():
        model.alphas["cell"].normal_()
    p = torch.sigmoid(model.alphas["cell"].detach())
    binary = ArchRegularizer(discretization="binary", discretization_weight=0.5)
    assert binary.penalty(model).item() == pytest.approx(0.5 * (p * (1 - p)).mean().item(), rel=1e-6)

    admm = ArchRegularizer(discretization="admm", discretization_weight=2.0)
    admm.update(model)  # first: z = one-hot argmax p, u = 0
    z = torch.nn.functional.one_hot(p.argmax(-1), 5).float()
    torch.testing.assert_close(admm.z["cell"], z)
    assert admm.penalty(model).item() == pytest.approx(((p - z) ** 2).sum().item(), rel=1e-6)
    admm.update(model)  # then u <- u + p - z with z = one-hot argmax (p + u)
    torch.testing.assert_close(admm.u["cell"], p - z)
    assert not ArchRegularizer().active


# -- schedules --------------------------------------------------------------------------------------------------
# -- the run loop -----------------------------------------------------------------------------------------------
from conftest import tiny_nb201 as tiny  # noqa: E402  (a NAS-Bench-201 search at 8x8)


@pytest.mark.parametrize("kw", [dict(strategy="single-level", relaxation="sigmoid"),
                                dict(relaxation="hard-gumbel", tau_max=5.0, tau_min=1.0),
                                dict(strategy="single-level", relaxation="gumbel", resource_weight=0.1),
                                dict(strategy="implicit", hvp="exact"),
                                dict(relaxation="sigmoid", discretization="admm", discretization_weight=0.1,
                                     lr_schedule="cosine-power", max_w=True)])
def test_variants_resume_exactly(tmp_path, kw):
    """Every variant runs in the loop and a resumed run replays the uninterrupted one (Gumbel noise included)."""
    full = start_search(tiny(**kw), tmp_path / "full", echo=lambda *a: None).run()
    part = start_search(tiny(**kw), tmp_path / "part", echo=lambda *a: None)
    part.run(stop_after=1)
    rest = resume_search(tmp_path / "part", echo=lambda *a: None).run()
    assert rest.history[-1]["alphas"] == full.history[-1]["alphas"]
    record = full.history[-1]
    assert {"param_free_ops", "hessian_eigenvalue"} <= set(record)
    assert record["genotype"].startswith("|")
    if "gumbel" in kw.get("relaxation", ""):
        assert [h["temperature"] for h in full.history] == pytest.approx([kw.get("tau_max", 10.0),
                                                                          kw.get("tau_min", 0.1)])


def test_search_logs_the_table_accuracy_and_stops_early(tmp_path, capsys):
    import json
    from darts_nas.cli import main
    from darts_nas.spaces import NB201Arch
    from test_nb201 import fake_accuracy, write_fake_table

    table = write_fake_table(tmp_path / "t.csv")
    lines = []
    run = start_search(tiny(epochs=3, nb201_table=str(table), stop_param_free=1), tmp_path / "run", echo=lines.append)
    result = run.run()
    first = result.history[0]
    arch = NB201Arch.from_text(first["genotype"])
    assert first["nb201"]["cifar10_test_acc"] == fake_accuracy(arch.ops)[0]
    assert first["param_free_ops"] == arch.parameter_free_ops()
    assert any("NAS-Bench-201: CIFAR-10" in line for line in lines)
    if arch.parameter_free_ops() >= 1:  # the threshold 1 stops at the first epoch with any parameter-free op
        assert result.finished and len(result.history) == 1 and "stopped" in first
        assert (tmp_path / "run" / "genotype.json").is_file()
        again = []
        resume_search(tmp_path / "run", echo=again.append).run()
        assert any("stopped early" in line for line in again)
    # the lookup command reads the run's cell: the final genotype, or the checkpoint's of an unfinished run
    final = NB201Arch.from_text(result.history[-1]["genotype"])
    capsys.readouterr()
    assert main(["nb201", "lookup", str(tmp_path / "run"), "--table", str(table), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["cifar10_test_acc"] == fake_accuracy(final.ops)[0]


def test_variant_settings_are_checked():
    with pytest.raises(DartsNasError, match="hard-gumbel"):
        tiny(relaxation="hard-gumbel", order=2).validate()
    with pytest.raises(DartsNasError, match="darts-cnn space"):
        tiny(fuse_ops=True).validate()
    with pytest.raises(DartsNasError, match="tau-max"):
        tiny(tau_max=0.1, tau_min=1.0).validate()
    with pytest.raises(DartsNasError, match="nb201-table"):
        tiny(space="darts-cnn", nb201_table="x.csv").validate()
    for name in ("darts-nb201", "single-darts-nb201", "gdas-nb201", "snas-nb201", "idarts-nb201",
                 "sigmoid-admm-nb201", "sharpdarts-cifar10"):
        preset_config(name).validate()
    assert preset_config("single-darts-nb201").lr == 0.005


def test_the_hessian_signal_runs_every_nth_epoch_and_the_last():
    from darts_nas.run.search import hessian_due

    assert [e + 1 for e in range(50) if hessian_due(e, 50, 5)] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert [e + 1 for e in range(4) if hessian_due(e, 4, 5)] == [4]
    assert [e + 1 for e in range(7) if hessian_due(e, 7, 3)] == [3, 6, 7]
    assert not any(hessian_due(e, 10, 0) for e in range(10))
    defaults = SearchConfig()
    assert (defaults.hessian_every, defaults.hessian_batches, defaults.hessian_iters) == (5, 1, 10)


def test_bench_signals_counts_the_estimates_of_a_preset(monkeypatch):
    """The share is (estimates x estimate time) / (epochs x steps per epoch x step time), at the preset's values."""
    from darts_nas import bench

    r = bench.measure_signal_share("darts-nb201", batch_size=4, steps=1, warmup=0)
    assert (r["epochs"], r["estimates"], r["steps_per_epoch"], r["preset_batch"]) == (50, 10, 390, 64)
    share = 10 * r["estimate_s"] * 16 / (50 * 390 * r["step_s"] * 16)
    assert r["share"] == pytest.approx(share)
