"""DARTS-PRIME (constrained bilevel DARTS): the clamp activation with permanent pruning (through resume), the node
BatchNorm, the Fisher-information schedule on scripted values, the proximity and ADMM terms against hand formulas,
the presets' runs, and their learning rates epoch by epoch."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from darts_nas.cli import main
from darts_nas.config import PRESETS, SearchConfig, preset_config
from darts_nas.errors import DartsNasError
from darts_nas.spaces.relaxation import get_relaxation
from darts_nas.run import resume_search, start_search
from darts_nas.run.checkpoint import load_checkpoint
from darts_nas.run.search import SearchRun
from darts_nas.spaces import PrimeSearchModel
from darts_nas.strategies import ArchRegularizer, ArchSchedule
from darts_nas.strategies.bilevel import alpha_step


def test_the_clamp_activation_and_its_start():
    torch.manual_seed(0)
    alpha = torch.tensor([[-0.5, 0.0, 0.3, 1.0, 1.7]])
    torch.testing.assert_close(get_relaxation("clamp").weights(alpha, None), torch.tensor([[0.0, 0.0, 0.3, 1.0, 1.0]]))
    model = PrimeSearchModel(C=4, layers=3, relaxation="clamp")
    a = model.alphas["normal"]
    assert a.shape == (14, 7) and "none" not in model.primitives
    assert (a - 1 / 7).abs().max() < 1e-3 and (a - 1 / 7).abs().max() > 0  # 1/|O| + 1e-4 N(0, 1)
    torch.testing.assert_close(model.probabilities()["normal"], a.detach().clamp(0, 1))


def _push(model, opt, entry, grad_value, steps=1):
    """Alpha steps whose gradient is `grad_value` at `entry` of the normal matrix and 0 elsewhere."""
    for _ in range(steps):
        grads = [torch.zeros_like(p) for p in model.arch_parameters()]
        grads[0][entry] = grad_value
        alpha_step(model, grads, opt)


def test_pruning_is_permanent_and_survives_a_state_dict():
    torch.manual_seed(0)
    model = PrimeSearchModel(C=4, layers=3, relaxation="clamp")
    opt = torch.optim.Adam(model.arch_parameters(), lr=0.2, betas=(0.5, 0.999))
    _push(model, opt, (3, 2), 1.0)  # one Adam step of lr 0.2 takes 1/7 below zero
    assert model.alphas["normal"][3, 2] == 0 and model.alive_normal[3, 2] == 0
    assert model.alive_normal.sum() == 14 * 7 - 1
    _push(model, opt, (3, 2), -1.0, steps=5)  # pushed back up: it stays pruned
    assert model.alphas["normal"][3, 2] == 0 and model.probabilities()["normal"][3, 2] == 0
    fresh = PrimeSearchModel(C=4, layers=3, relaxation="clamp")
    fresh.load_state_dict(model.state_dict())  # the masks are buffers of the checkpointed state
    assert fresh.alive_normal[3, 2] == 0
    opt2 = torch.optim.Adam(fresh.arch_parameters(), lr=0.2)
    _push(fresh, opt2, (3, 2), -1.0, steps=3)
    assert fresh.alphas["normal"][3, 2] == 0
    # a pruned op contributes nothing to its edge
    edge = fresh.net.cells[0].edges[3]
    x = torch.randn(2, 4, 8, 8)
    w = fresh.op_weights()["normal"][3]
    expected = sum(w[k] * edge.op_for_column(k)(x) for k in range(7) if k != 2)
    torch.testing.assert_close(edge(x, w), expected)


def test_each_node_sum_is_batch_normalized():
    torch.manual_seed(0)
    model = PrimeSearchModel(C=4, layers=3, relaxation="clamp")
    cell = model.net.cells[0]
    seen = {}
    for i, bn in enumerate(cell.node_norms):
        bn.register_forward_hook(lambda m, inp, out, i=i: seen.update({i: (inp[0], out)}))
    model(torch.randn(4, 3, 8, 8))
    assert len(seen) == 4
    for node_sum, out in seen.values():
        torch.testing.assert_close(out, F.batch_norm(node_sum, None, None, training=True), atol=1e-5, rtol=1e-5)


def scripted_rule(fisher_values, freq=10.0, ewma=0.2, threshold=1.0, factor=1.05):
    """The schedule by hand: before weight step t, an alpha step iff 0 < ewma_{t-1} < threshold."""
    taken, smoothed = [], None
    for fi in fisher_values:
        value = -1.0 if smoothed is None else smoothed
        if 0 < value < threshold:
            taken.append(True)
            threshold /= factor ** freq
        else:
            taken.append(False)
            threshold *= factor
        smoothed = fi if smoothed is None else ewma * fi + (1 - ewma) * smoothed
    return taken


def test_the_fisher_schedule_steps_exactly_when_the_rule_says():
    g = torch.Generator().manual_seed(3)
    values = (torch.rand(300, generator=g) * 3).tolist()
    values[100:140] = [0.05] * 40  # a quiet stretch: several alpha steps
    sched = ArchSchedule("fisher", freq=10.0)
    taken = []
    for t, fi in enumerate(values):
        taken.append(sched.due(t))
        sched.observe(torch.tensor(fi))
    assert taken == scripted_rule(values)
    assert 3 <= sum(taken) < 60
    fixed = ArchSchedule("fixed", freq=4)
    assert [fixed.due(t) for t in range(9)] == [False, False, False, True, False, False, False, True, False]


def test_the_proximity_term_by_hand():
    torch.manual_seed(0)
    model = PrimeSearchModel(C=4, layers=3, steps=2, relaxation="clamp")
    with torch.no_grad():
        # node 0 (edges 0, 1), node 1 (edges 2, 3, 4): known strongest ops
        model.alphas["normal"].copy_(torch.rand(5, 7) * 0.3)
        model.alphas["normal"][0, 4] = 0.9
        model.alphas["normal"][1, 2] = 0.8
        model.alphas["normal"][2, 0] = 0.7
        model.alphas["normal"][4, 6] = 0.95
        model.alphas["reduce"].copy_(torch.rand(5, 7) * 0.3)
    reg = ArchRegularizer(discretization="proximity", discretization_weight=0.1)
    reg.set_progress(0.4)
    p = {k: a.clamp(0, 1) for k, a in model.alphas.items()}
    d = torch.zeros(5, 7)
    d[0, 4] = d[1, 2] = d[2, 0] = d[4, 6] = 1.0   # node 0 keeps edges 0, 1; node 1 keeps edges 2 and 4 (rows)
    normal = 0.4 * 0.05 * torch.linalg.vector_norm(p["normal"] - d)
    r = p["reduce"].detach()
    d_r = torch.zeros(5, 7)
    for rows in ([0, 1], [2, 3, 4]):
        best = sorted(rows, key=lambda e: -r[e].max().item())[:2]
        for e in best:
            d_r[e, r[e].argmax()] = 1.0
    reduce = 0.4 * 0.05 * torch.linalg.vector_norm(p["reduce"] - d_r)
    torch.testing.assert_close(reg.penalty(model), normal + reduce)


def test_the_authors_admm_terms_and_updates_by_hand():
    torch.manual_seed(0)
    model = PrimeSearchModel(C=4, layers=3, steps=2, relaxation="clamp")
    reg = ArchRegularizer(discretization="admm-prime", discretization_weight=0.1, admm_every=3)
    raw0 = {k: a.detach().clone() for k, a in model.alphas.items()}
    # at the start z = the raw alphas, u = 0: the term is rho/2 ||clamp(alpha) - alpha|| = 0 inside [0, 1]
    torch.testing.assert_close(reg.penalty(model), torch.tensor(0.0))
    opt = torch.optim.Adam(model.arch_parameters(), lr=0.05)
    for step in range(3):
        _push(model, opt, (step, 1), 1.0)  # alpha steps without the regularizer: its updates are driven below
    for _ in range(2):  # what alpha_step does after each step
        reg.on_step(model)
    assert reg.admm_count == 2 and torch.equal(reg.z["normal"], raw0["normal"])
    reg.on_step(model)  # the third: z <- disc(clamp(alpha + u)), u <- u + alpha - z (raw alphas, masked)
    a = model.alphas["normal"].detach()
    z = torch.zeros(5, 7)
    for rows in ([0, 1], [2, 3, 4]):
        best = sorted(rows, key=lambda e: -a[e].clamp(0, 1).max().item())[:2]
        for e in best:
            z[e, a[e].clamp(0, 1).argmax()] = 1.0
    torch.testing.assert_close(reg.z["normal"], z)
    torch.testing.assert_close(reg.u["normal"], (a - z) * model.alive_normal)
    expected = 0.05 * sum(torch.linalg.vector_norm((model.alphas[k].clamp(0, 1) - reg.z[k] + reg.u[k])
                                                   * getattr(model, f"alive_{k}")) for k in ("normal", "reduce"))
    torch.testing.assert_close(reg.penalty(model), expected)


from conftest import tiny_prime as tiny  # noqa: E402


@pytest.mark.parametrize("kw", [dict(), dict(discretization="admm-prime", admm_every=3, arch_schedule="fixed",
                                     schedule_freq=3)])
def test_darts_prime_runs_and_resumes_exactly(tmp_path, kw):
    full = start_search(tiny(**kw), tmp_path / "full", echo=lambda *a: None).run()
    part = start_search(tiny(**kw), tmp_path / "part", echo=lambda *a: None)
    part.run(stop_after=1)
    first = load_checkpoint(tmp_path / "part")
    rest = resume_search(tmp_path / "part", echo=lambda *a: None).run()
    assert rest.history[-1]["alphas"] == full.history[-1]["alphas"]
    last = load_checkpoint(tmp_path / "full")
    for name in ("alive_normal", "alive_reduce"):  # pruning only ever removes ops
        assert torch.all(last["model"][name] <= first["model"][name])
    steps = [h["alpha_steps"] for h in full.history]
    adam = last["a_optimizer"]["state"][0]["step"]
    assert sum(steps) == int(adam) and sum(steps) > 0  # the optimizer took exactly the scheduled alpha steps
    if kw.get("arch_schedule") == "fixed":  # 10 weight steps an epoch: alpha steps before steps 3, 6, 9
        assert steps == [3, 3]


def test_schedule_settings_are_checked():
    for kw, message in [(dict(strategy="single-level", relaxation="sigmoid"), "steps both on one batch"),
                        (dict(cuda_graphs=True), "no --cuda-graphs"),
                        (dict(schedule_freq=0.5), "--schedule-freq must be at least 1"),
                        (dict(discretization="proximity", discretization_weight=0.0), "go together")]:
        with pytest.raises(DartsNasError, match=message):
            preset_config("darts-prime-cifar10", **kw).validate()
    with pytest.raises(DartsNasError, match="image searches"):
        preset_config("darts-ptb", arch_schedule="fisher").validate()


def test_the_darts_prime_presets_from_the_command_line(tmp_path, capsys):
    assert main(["search", "--preset", "darts-prime-admm-cifar10", "--dataset", "synthetic", "--synthetic-size", "96",
                 "--batch-size", "8", "--channels", "4", "--layers", "3", "--nodes", "2", "--epochs", "1", "--device", "cpu",
                 "--no-progress", "--hessian-every", "0", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "schedule:" in out and "alpha steps in 10 weight steps" in out


def test_the_darts_prime_presets_step_the_cosine_before_each_epoch(tmp_path):
    """The authors' loop steps its cosine scheduler before each epoch (torch >= 1.1): epoch e trains at the
    cosine's value for e + 1, from 0.0249763 to exactly 0.001 over 50 epochs; every other preset keeps DARTS'."""
    def cosine(t, T=50, lr=0.025, lr_min=0.001):
        return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t / T)) / 2

    for name in ("darts-prime-cifar10", "darts-prime-admm-cifar10"):
        config = preset_config(name).validate()
        assert config.lr_step_before_epoch and (config.epochs, config.lr, config.lr_min) == (50, 0.025, 0.001)
        lrs = [SearchRun.lr(SimpleNamespace(config=config), e) for e in range(50)]
        assert lrs == pytest.approx([cosine(e + 1) for e in range(50)], rel=1e-12, abs=0)
        assert round(lrs[0], 7) == 0.0249763 and lrs[-1] == 0.001
    darts = preset_config("darts-cifar10")
    assert SearchRun.lr(SimpleNamespace(config=darts), 0) == 0.025
    assert SearchRun.lr(SimpleNamespace(config=darts), 49) == pytest.approx(0.0010237, abs=5e-8)
    assert [n for n in PRESETS if preset_config(n).lr_step_before_epoch] == ["darts-prime-cifar10",
                                                                            "darts-prime-admm-cifar10"]
    run = start_search(tiny(epochs=2), tmp_path / "s", echo=lambda *a: None).run()
    assert [h["lr"] for h in run.history] == pytest.approx([cosine(1, 2), cosine(2, 2)], rel=1e-12, abs=0)
    with pytest.raises(DartsNasError, match="--lr-step-before-epoch belongs to --lr-schedule cosine"):
        preset_config("darts-prime-cifar10", lr_schedule="constant").validate()
