"""Latency as a search objective: the ridge fit against an independent least-squares solution, the surrogate on an
exactly linear latency, the hinge penalty's gradient and warm-up by hand, the table command, the checks on
settings, and a latency-targeted search that moves the derived cell toward cheaper ops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from darts_nas.cli import main
from darts_nas.errors import DartsNasError
from darts_nas.strategies.latency import LatencyTable, fit_ridge
from darts_nas.strategies import ArchRegularizer

from conftest import NB201_CLI_TINY as TINY  # noqa: E402


def test_ridge_fit_equals_an_independent_least_squares_solution():
    g = np.random.default_rng(0)
    x, y = g.normal(size=(40, 6)), g.normal(size=40)
    coef, intercept = fit_ridge(torch.from_numpy(x), torch.from_numpy(y), ridge=2.0)
    # minimize ||y - x c - b||^2 + 2 ||c||^2 as one augmented least-squares problem (b unpenalized)
    a = np.block([[x, np.ones((40, 1))], [np.sqrt(2.0) * np.eye(6), np.zeros((6, 1))]])
    sol = np.linalg.lstsq(a, np.concatenate([y, np.zeros(6)]), rcond=None)[0]
    assert np.allclose(coef.numpy(), sol[:6], atol=1e-10) and intercept == pytest.approx(sol[6], abs=1e-10)


def test_a_linear_latency_is_recovered_on_held_out_architectures():
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(6, 5, generator=g, dtype=torch.float64)
    archs = torch.nn.functional.one_hot(torch.randint(0, 5, (100, 6), generator=g), 5).double()
    ms = (archs * cost).sum((1, 2)) + 3.0
    coef, intercept = fit_ridge(archs[:80].reshape(80, -1), ms[:80], ridge=1e-9)
    table = LatencyTable({"cell": coef.reshape(6, 5)}, intercept, {})
    predicted = torch.stack([table.estimate({"cell": a}) for a in archs[80:]])
    assert torch.allclose(predicted, ms[80:], atol=1e-6)


def test_the_latency_penalty_and_its_gradient_by_hand():
    from toy_space import ToySearchModel

    torch.manual_seed(0)
    model = ToySearchModel(C=3, num_classes=3, edges=2).double()
    with torch.no_grad():
        model.alphas["chain"].copy_(torch.tensor([[0.5, -0.3, 1.0], [0.2, 0.4, -0.1]]))
    coef = torch.tensor([[0.0, 0.1, 2.0], [0.0, 0.2, 3.0]], dtype=torch.float64)
    table = LatencyTable({"chain": coef}, 0.5, {})
    reg = ArchRegularizer(latency=table, latency_target=1.0, latency_weight=0.3, latency_warmup_steps=10)
    reg.steps = 4  # c_t = 0.3 * 4/10
    p = torch.softmax(model.alphas["chain"].detach(), -1)
    estimate = 0.5 + (p * coef).sum()
    assert estimate > 1.0
    assert reg.penalty(model).item() == pytest.approx(0.12 * (estimate - 1.0).item(), rel=1e-12)
    # d/dalpha of sum_k p_k c_k per row: p * (c - <p, c>)
    by_hand = 0.12 * p * (coef - (p * coef).sum(-1, keepdim=True))
    got = torch.autograd.grad(reg.penalty(model), model.alphas["chain"])[0]
    assert torch.allclose(got, by_hand, atol=1e-14)
    reg.latency_target = 10.0  # below the target: no penalty, no gradient
    assert reg.penalty(model).item() == 0.0
    reg.steps = 50
    assert reg.latency_coefficient() == pytest.approx(0.3)  # the warm-up is over


def test_latency_table_command_and_settings(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["latency-table", *TINY, "--samples", "10", "--repeats", "1", "--images", "2", "--table",
                 str(out)]) == 0
    said = capsys.readouterr().out
    assert "linear surrogate on 8 of them, on the 2 held out: R^2" in said
    d = json.loads(out.read_text())
    assert d["space"] == "nb201" and d["samples"] == 10 and d["input_shape"] == [2, 3, 32, 32]
    assert np.array(d["coef"]["cell"]).shape == (6, 5)
    # a search with other supernet sizes is refused, in one line
    assert main(["search", *TINY, "--channels", "8", "--latency-table", str(out), "--out", str(tmp_path / "x")]) == 2
    assert "measure it again with the search's settings" in capsys.readouterr().err
    from darts_nas.config import preset_config

    with pytest.raises(DartsNasError, match="--latency-weight needs --latency-table"):
        preset_config("darts-nb201", latency_weight=0.1).validate()
    with pytest.raises(DartsNasError, match="latency tables measure image spaces"):
        preset_config("darts-ptb", latency_table=str(out)).validate()


def test_a_latency_targeted_search_derives_a_cheaper_cell(tmp_path):
    """Convolutions cost 1 ms each in a hand-made table; with the penalty the derived cell's estimate falls below
    the unpenalized search's, and each epoch records the measured latency next to the estimate."""
    from darts_nas.config import preset_config
    from darts_nas.genotypes import NB201_PRIMITIVES
    from darts_nas.run.search import build_search_model

    cost = torch.tensor([[1.0 if "conv" in op else 0.0 for op in NB201_PRIMITIVES]] * 6)
    hparams = build_search_model(preset_config("darts-nb201", channels=4, cells_per_stage=1), num_classes=10).hparams
    table = LatencyTable({"cell": cost}, 0.0, {"space": "nb201", "input_shape": [2, 3, 32, 32], "repeats": 2,
                                               "hparams": json.loads(json.dumps(hparams))})
    path = tmp_path / "table.json"
    table.save(path)
    runs = {}
    for name, weight in (("free", "0"), ("penalized", "20")):
        assert main(["search", *TINY, "--epochs", "3", "--arch-lr", "0.05", "--latency-table", str(path),
                     "--latency-weight", weight, "--latency-target", "0", "--latency-warmup-steps", "0",
                     "--hessian-every", "0", "--out", str(tmp_path / name)]) == 0
        runs[name] = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert all("latency_ms" in r and r["latency_ms"] > 0 for r in runs["penalized"])
    assert runs["penalized"][-1]["latency_estimate_ms"] < runs["free"][-1]["latency_estimate_ms"]
    assert runs["penalized"][-1]["latency_estimate_ms"] <= 1.0


def test_the_ridge_weight_is_chosen_by_cross_validation():
    from darts_nas.strategies.latency import RIDGES, choose_ridge

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 30, generator=g, dtype=torch.float64)
    exact = x @ torch.randn(30, generator=g, dtype=torch.float64)
    assert choose_ridge(x, exact) == RIDGES[0]              # no noise: the least shrinkage predicts best
    noise = torch.randn(200, generator=g, dtype=torch.float64)
    assert choose_ridge(x, noise) == RIDGES[-1]             # nothing to learn: shrink everything


def test_mixed_random_architectures_spread_their_op_counts():
    from darts_nas.strategies.latency import random_architecture
    from darts_nas.spaces import ProxylessSearchModel

    model = ProxylessSearchModel(C=8, num_classes=10, stem_stride=1)
    g = torch.Generator().manual_seed(0)

    def zero_counts(mixed):
        return torch.tensor([float(random_architecture(model, g, mixed)["skippable"][:, 0].sum())
                             for _ in range(400)])

    uniform, mixed = zero_counts(False), zero_counts(True)
    assert abs(uniform.mean() - 15 / 7) < 0.3 and abs(mixed.mean() - 15 / 7) < 0.5   # the same mean, 15/7
    assert mixed.std() > 1.4 * uniform.std()    # a wider spread: sd 2.25 against 1.36 (Beta(1, 6) frequencies)
    arch = random_architecture(model, g, True)
    assert all(((w.sum(-1) == 1) & ((w == 0) | (w == 1)).all(-1)).all() for w in arch.values())
