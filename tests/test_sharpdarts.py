"""sharpDARTS: SharpSepConv and ResizablePool against direct computations, the spaces and published cells (with the
paper's parameter counts), Max-W and Cosine Power Annealing against the authors' formulas, and the HyperCuboid
grid search (its weights' layout, the strongest path against an enumeration, the path network, its affine BNs and
preset), and the choke ops' middle width as a training setting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from darts_nas.cli import main
from darts_nas.config import SearchConfig, preset_config, train_preset_config
from darts_nas.errors import DartsNasError
from darts_nas.genotypes import Genotype, HyperPath, SharpGenotype, get_genotype, load_genotype
from darts_nas.nets import NetworkImageNet, build_network, create_model, network_from_hparams
from darts_nas.nets.hyperpath import HyperPathNetwork
from darts_nas.spaces.relaxation import max_w
from darts_nas.run.common import cosine_power_lr
from darts_nas.run.search import build_search_model
from darts_nas.run.train import build_network_for
from darts_nas.ops import SHARP_PRIMITIVES, SHARPER_PRIMITIVES, ResizablePool, SharpSepConv, mid_channels, sharp_op
from darts_nas.spaces import HyperCuboidSearchModel, SharpDartsSearchModel, SharperSearchModel
from darts_nas.spaces.hypercuboid import channel_counts


def _bn(x):  # batch statistics, no affine (what a search BN and a fresh BN in train mode compute)
    return F.batch_norm(x, None, None, training=True, eps=1e-5)


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


# -- ops --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,stride,dilation,C_mid", [(3, 1, 1, None), (5, 2, 1, None), (3, 2, 2, 12), (7, 1, 1, 32),
                                                     (5, 1, 2, 4)])
def test_sharpsepconv_is_its_definition(k, stride, dilation, C_mid):
    torch.manual_seed(0)
    C_in, C_out = 5, 6
    op = SharpSepConv(C_in, C_out, k, stride, dilation, C_mid, affine=False, track_running_stats=False).double()
    _randomize(op)
    x = torch.randn(3, C_in, 11, 11, dtype=torch.float64)
    m = C_out if C_mid is None else C_mid
    # relu, depthwise (stride, dilation, same padding), 1x1 to m, BN, relu, depthwise k (stride 1), 1x1, BN
    y = F.conv2d(F.relu(x), op.depthwise1.weight, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation,
                 groups=C_in)
    y = F.relu(_bn(F.conv2d(y, op.pointwise1.weight)))
    y = F.conv2d(y, op.depthwise2.weight, padding=(k - 1) // 2, groups=m)
    y = _bn(F.conv2d(y, op.pointwise2.weight))
    assert op.pointwise1.weight.shape[0] == m and all(c.bias is None for c in (op.depthwise1, op.pointwise2))
    torch.testing.assert_close(op(x), y)
    assert y.shape[-1] == math.ceil(11 / stride)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_resizable_pool_is_its_definition(kind):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    pool = (lambda t: F.max_pool2d(t, 3, 2, 1)) if kind == "max" else \
        (lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=True))  # the padding counts, as in the authors' code
    same = ResizablePool(4, 4, 2, kind).double()
    assert same.resize is None and same.search_bn is None
    torch.testing.assert_close(same(x), pool(x))
    wider = ResizablePool(4, 7, 2, kind, search=True, pool_bn=False).double()
    _randomize(wider)
    conv = wider.resize[0].weight
    expected = F.batch_norm(F.conv2d(pool(x), conv), None, None, training=True, eps=1e-3)
    torch.testing.assert_close(wider(x), expected)
    search = ResizablePool(4, 4, 1, kind, search=True).double()  # the cell search adds a BN after its pools
    pooled = F.max_pool2d(x, 3, 1, 1) if kind == "max" else F.avg_pool2d(x, 3, 1, 1, count_include_pad=True)
    torch.testing.assert_close(search(x), _bn(pooled))


@pytest.mark.parametrize("name", sorted(set(SHARP_PRIMITIVES) | set(SHARPER_PRIMITIVES)))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_sharp_op_keeps_its_shape_and_its_widths(name, stride):
    C = 8
    op = sharp_op(name, C, stride, search=False)
    x = torch.randn(2, C, 8, 8)
    assert op(x).shape == (2, C, 8 // stride, 8 // stride)
    if isinstance(op, SharpSepConv):
        expected_mid = {"flood": 4 * C, "choke": 32}.get(next((r for r in ("flood", "choke") if r in name), ""), C)
        assert op.C_mid == expected_mid == mid_channels(name, C)
        assert op.dilation == (2 if name.startswith("dil") else 1)
        assert op.kernel_size == int(name[-1])


# -- Max-W and Cosine Power Annealing ---------------------------------------------------------------------------
def test_max_w_is_the_authors_formula_with_the_maximums_gradient():
    w = torch.softmax(torch.randn(4, 6, dtype=torch.float64), -1).requires_grad_(True)
    c = torch.randn(4, 6, dtype=torch.float64)
    out = max_w(w)
    expected = 1.0 - w.max(-1, keepdim=True).values + w
    torch.testing.assert_close(out, expected)
    (out * c).sum().backward()
    # d/dw_k of sum_j c_j (1 - max + w_j) = c_k - [k = argmax] sum_j c_j
    hand = c - F.one_hot(w.argmax(-1), 6).double() * c.sum(-1, keepdim=True)
    torch.testing.assert_close(w.grad, hand)


def authors_cpa(epochs, max_lr, min_lr, exponent, warmup):
    """The authors' schedule as an array over the whole run (their description: 1-based epochs shifted by the
    warm-up, power curve, min-max normalized over the array, warm-up entries overwritten by a linear ramp)."""
    e = np.arange(epochs, dtype=np.float64) + 1
    if warmup:
        ramp = e <= warmup + 1
        span = epochs - warmup
        e = e - warmup
    else:
        span = epochs
    c = (1 + np.cos(np.pi * e / span)) / 2
    p = exponent ** (c + 1) if exponent != 1 else c
    p = (p - p.min()) / (p.max() - p.min())
    if warmup:
        p[ramp] = np.arange(1, warmup + 2) / (warmup + 1)
    return p * (max_lr - min_lr) + min_lr


@pytest.mark.parametrize("epochs,exponent,warmup", [(120, 2.0, 5), (50, 10.0, 0), (30, 1.0, 0), (20, 2.0, 3),
                                                    (7, 3.0, 1)])
def test_cosine_power_annealing_is_the_authors_schedule(epochs, exponent, warmup):
    expected = authors_cpa(epochs, 0.025, 1e-4, exponent, warmup)
    ours = [cosine_power_lr(e, epochs, 0.025, 1e-4, exponent, warmup) for e in range(epochs)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_cosine_power_annealing_values_of_the_authors_search():
    # 120 epochs, 0.025 to 1e-4, exponent 2, 5 warm-up epochs: a ramp of 1/6 steps up to 0.025 at epoch 6, then the
    # power curve down to 1e-4 (the value their search log shows at its next-to-last epoch is 1.0322e-4)
    lr = [cosine_power_lr(e, 120, 0.025, 1e-4, 2.0, 5) for e in range(120)]
    assert lr[0] == pytest.approx(1e-4 + (0.025 - 1e-4) / 6)
    assert lr[5] == pytest.approx(0.025) and lr[119] == pytest.approx(1e-4)
    assert lr[118] == pytest.approx(1.0322e-4, rel=1e-4)
    assert all(a >= b for a, b in zip(lr[5:], lr[6:]))


# -- the cell spaces and their genotypes -------------------------------------------------------------------------
def test_the_published_sharp_cells_have_the_papers_parameter_counts():
    params = {n: sum(p.numel() for p in build_network(n, "cifar10", auxiliary=False).parameters()) / 1e6
              for n in ("SHARP_DARTS", "SHARPSEPCONV_DARTS")}
    assert abs(params["SHARP_DARTS"] - 1.98) < 0.01          # the paper's table: 1.98M
    assert round(params["SHARPSEPCONV_DARTS"], 1) == 3.6     # 3.6M
    net = create_model("sharp_darts_cifar10")
    ops = [type(op).__name__ for cell in net.cells for op in cell.ops]
    assert "SharpSepConv" in ops and "SepConv" not in ops
    assert isinstance(get_genotype("sharper_max_w"), SharpGenotype)


def test_sharp_genotype_text_json_and_errors(tmp_path):
    g = get_genotype("SHARPER_MAX_W")
    text = g.to_text()
    assert text.startswith("SharpGenotype(") and load_genotype(text) == g
    assert SharpGenotype.from_dict(g.to_dict()) == g and g.to_dict()["space"] == "sharp-darts"
    (tmp_path / "g.json").write_text(__import__("json").dumps(g.to_dict()))
    assert load_genotype(tmp_path / "g.json") == g
    with pytest.raises(DartsNasError, match="SharpGenotype"):
        Genotype.from_text(text.replace("SharpGenotype", "Genotype"))  # flood/choke ops are not DARTS'
    # the same op names, two families: DARTS' sep_conv_3x3 is two DilConvs, sharpDARTS' a SharpSepConv
    darts = build_network(get_genotype("DARTS_V2"), "cifar10", C=8, layers=3)
    sharp = build_network(SharpGenotype(**{k: getattr(get_genotype("DARTS_V2"), k) for k in
                                           ("normal", "normal_concat", "reduce", "reduce_concat")}),
                          "cifar10", C=8, layers=3)
    assert type(darts.cells[0].ops[0]).__name__ == "SepConv" and type(sharp.cells[0].ops[0]).__name__ == "SharpSepConv"


@pytest.mark.parametrize("cls,ops", [(SharpDartsSearchModel, SHARP_PRIMITIVES), (SharperSearchModel,
                                                                                 SHARPER_PRIMITIVES)])
def test_the_sharp_spaces_mix_their_ops_and_derive_sharp_genotypes(cls, ops):
    torch.manual_seed(0)
    model = cls(C=4, layers=3)
    assert model.alphas["normal"].shape == (14, len(ops)) and model.primitives == ops
    edge = model.net.cells[0].edges[0]
    x = torch.randn(2, 4, 8, 8)
    w = torch.softmax(torch.randn(len(ops)), -1)
    expected = sum(w[k] * make_op_like(edge, k)(x) for k in range(len(ops)) if ops[k] != "none")
    torch.testing.assert_close(edge(x, w), expected)
    with torch.no_grad():
        model.alphas["normal"].zero_()
        model.alphas["normal"][:, ops.index("flood_conv_3x3")] = 3.0
    g = model.genotype()
    assert isinstance(g, SharpGenotype) and {op for op, _ in g.normal} == {"flood_conv_3x3"}


def make_op_like(edge, k):
    return edge.op_for_column(k)


def test_a_sharp_search_runs_and_its_cell_trains(tmp_path):
    common = ["--dataset", "synthetic", "--synthetic-size", "32", "--batch-size", "8", "--device", "cpu",
              "--no-progress", "--image-size", "8"]
    assert main(["search", "--preset", "sharpdarts-cifar10", *common, "--channels", "4", "--layers", "3",
                 "--nodes", "2", "--epochs", "2", "--lr-warmup-epochs", "0", "--hessian-every", "0", "--out",
                 str(tmp_path / "s")]) == 0
    g = load_genotype(tmp_path / "s")
    assert isinstance(g, SharpGenotype)
    assert main(["train", "--preset", "sharpdarts-cifar10-eval", "--genotype", str(tmp_path / "s"), *common,
                 "--channels", "4", "--layers", "3", "--epochs", "1", "--lr-warmup-epochs", "0",
                 "--out", str(tmp_path / "t")]) == 0


# -- the HyperCuboid --------------------------------------------------------------------------------------------
def test_channel_counts_as_the_authors():
    assert channel_counts(36, 4) == [32, 64, 128, 256] and channel_counts(16, 3) == [16, 32, 64]


def test_the_hypercuboid_runs_the_chosen_path_with_one_hot_weights():
    """With one-hot rows the supernet is the chain of the chosen ops (the other widths carry zeros); the column of
    (c_in, c_out, op) is (i n + j) 2 + o."""
    torch.manual_seed(0)
    model = HyperCuboidSearchModel(C=4, widths=3, layers=2, head=8).double()
    n = 3
    choice = [(1, 0, 2, 1), (2, 2, 1, 0), (1, 1, 1, 1), (2, 1, 0, 1)]  # (stride, i, j, op) per pass
    weights = {k: torch.zeros_like(a) for k, a in model.alphas.items()}
    for p, (stride, i, j, o) in enumerate(choice):
        weights[f"stride{stride}"][p // 2, (i * n + j) * 2 + o] = 1.0
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    with model.fixed_op_weights(weights):
        out = model(x)
    net = model.net
    h = net.stems[choice[0][1]](x)
    for p, (stride, i, j, o) in enumerate(choice):
        h = net.ops[stride - 1][p // 2][(i * n + j) * 2 + o](h)
    expected = net.classifier(torch.flatten(F.adaptive_avg_pool2d(net.heads[choice[-1][2]](h), 1), 1))
    torch.testing.assert_close(out, expected)
    # one softmax per (pass, layer) row over the whole block C_in x C_out x ops
    p = model.probabilities()["stride1"]
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))


def brute_force_path(model, weights):
    """The best (stem width, [(stride, c_in, c_out, op)]) by enumerating every chain of choices."""
    C, keys = model.channels, model.column_keys()
    best, best_path = -1.0, None
    passes = [(layer, s) for layer in range(model.layers) for s in (1, 2)]
    for stem in C:
        for outs in itertools.product(C, repeat=len(passes)):
            for ops in itertools.product(("ResizablePool", "SharpSepConv"), repeat=len(passes)):
                total, c_in, steps = 0.0, stem, []
                for (layer, s), c_out, op in zip(passes, outs, ops):
                    total += weights[f"stride{s}"][layer, keys.index((c_in, c_out, op))].item()
                    steps.append((s, c_in, c_out, op))
                    c_in = c_out
                if total > best:
                    best, best_path = total, (stem, steps)
    return best_path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_strongest_path_is_the_best_chain(seed):
    torch.manual_seed(seed)
    model = HyperCuboidSearchModel(C=4, widths=3, layers=2, head=8)
    with torch.no_grad():
        for a in model.alphas.values():
            a.copy_(torch.randn(a.shape) * 2)
    stem, steps = brute_force_path(model, model.probabilities())
    g = model.genotype()
    assert (g.stem, list(g.steps)) == (stem, steps)
    d = model.derived_weights()
    assert all(torch.equal(v.sum(-1), torch.ones(2)) for v in d.values())


def test_a_hand_made_path_is_found():
    model = HyperCuboidSearchModel(C=8, widths=4, layers=2, head=8)
    keys = model.column_keys()
    w = {k: torch.full(a.shape, 0.01) for k, a in model.alphas.items()}
    # the designed path 16 -> 64 (sep) -> 64 (pool) -> 32 (sep) -> 64 (pool) with large weights; a decoy with one
    # larger op but weak neighbours
    for (s, layer, ci, co, op) in [(1, 0, 16, 64, "SharpSepConv"), (2, 0, 64, 64, "ResizablePool"),
                                   (1, 1, 64, 32, "SharpSepConv"), (2, 1, 32, 64, "ResizablePool")]:
        w[f"stride{s}"][layer, keys.index((ci, co, op))] = 0.5
    w["stride1"][0, keys.index((8, 8, "SharpSepConv"))] = 0.9
    stem, steps = model.path_choices(w)
    assert stem == 16
    assert [(s, ci, co, op) for _, s, ci, co, op in steps] == [
        (1, 16, 64, "SharpSepConv"), (2, 64, 64, "ResizablePool"), (1, 64, 32, "SharpSepConv"),
        (2, 32, 64, "ResizablePool")]


def test_hyper_path_text_json_rules_and_network():
    g = HyperPath(16, [(1, 16, 32, "SharpSepConv"), (2, 32, 32, "ResizablePool")])
    assert HyperPath.from_text(g.to_text()) == g and HyperPath.from_dict(g.to_dict()) == g
    assert load_genotype(g.to_text()) == g
    with pytest.raises(DartsNasError, match="reads 16 channels"):
        HyperPath(16, [(1, 16, 32, "SharpSepConv"), (2, 16, 32, "ResizablePool")])
    with pytest.raises(DartsNasError, match="unknown op"):
        HyperPath(16, [(1, 16, 32, "conv")])
    net = HyperPathNetwork(g, num_classes=5, head=12)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert [type(b).__name__ for b in net.blocks] == ["SharpSepConv", "ResizablePool"]


def test_a_hypercuboid_search_derives_prints_and_trains_its_path(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--synthetic-size", "32", "--batch-size", "8", "--device", "cpu",
              "--no-progress"]
    assert main(["search", "--space", "hypercuboid", *common, "--channels", "4", "--layers", "4", "--nodes", "2",
                 "--epochs", "1", "--max-w", "--hessian-every", "0", "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["derive", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "HyperPath(stem=" in out and "strongest path" in out and out.count("_op_type_") == 4
    assert main(["plot", str(tmp_path / "s"), "--format", "png"]) == 0  # the grid's heat maps, the path boxed
    assert (tmp_path / "s" / "plots" / "grid.png").is_file()
    assert not (tmp_path / "s" / "plots" / "alphas.png").exists()
    assert main(["train", "--genotype", str(tmp_path / "s"), *common, "--epochs", "1", "--no-auxiliary",
                 "--out", str(tmp_path / "t")]) == 0


def test_the_hypercuboids_bns_are_affine_as_the_authors():
    """Every BN of the supernet has weight and bias by default (the authors' ops hard-code affine=True, their stems
    and heads use PyTorch's default): 2 parameters per BN channel, counted by hand for widths 4, 8, one layer."""
    def count(model):
        return sum(p.numel() for p in model.net.parameters())

    kw = dict(C=4, widths=2, layers=1, head=8)
    affine, plain = HyperCuboidSearchModel(**kw), HyperCuboidSearchModel(**kw, affine=False)
    widths, head = [4, 8], 8
    stems = sum(widths)
    # per pass: the pools' resizing BN (c_out, only when the width changes), the SharpSepConvs' two BNs (2 c_out)
    per_pass = sum(co for ci in widths for co in widths if ci != co) + sum(2 * co for ci in widths for co in widths)
    heads = 2 * head * len(widths)
    assert count(affine) - count(plain) == 2 * (stems + 2 * per_pass + heads) == 328
    bns = [m for m in affine.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.weight is not None and not m.track_running_stats for m in bns)
    assert all(m.weight is None for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    config = preset_config("hypercuboid-cifar10", channels=4, nodes=2, layers=2)
    assert config.hypercuboid_affine and build_search_model(config, 10).hparams["affine"]
    assert not build_search_model(preset_config("hypercuboid-cifar10", hypercuboid_affine=False), 10).hparams["affine"]
    with pytest.raises(DartsNasError, match="--hypercuboid-affine does not apply to the darts-cnn space"):
        SearchConfig(hypercuboid_affine=False).validate()


def test_the_hypercuboid_preset_is_the_authors_grid_search():
    c = preset_config("hypercuboid-cifar10").validate()
    assert (c.space, c.channels, c.layers, c.nodes, c.batch_size, c.epochs, c.seed) == ("hypercuboid", 36, 8, 4, 64,
                                                                                        120, 10)
    assert (c.max_w, c.cutout, c.lr, c.lr_min, c.lr_schedule, c.lr_power, c.lr_warmup_epochs) == (
        True, 16, 0.025, 1e-4, "cosine-power", 2.0, 5)
    assert (c.order, c.train_portion, c.arch_lr, c.weight_decay, c.momentum) == (1, 0.5, 3e-4, 3e-4, 0.9)
    assert channel_counts(c.channels, c.nodes) == [32, 64, 128, 256]


def test_the_choke_width_is_a_training_setting_with_the_authors_imagenet_default():
    """A choke op's parameters by hand (depthwise 3x3, 1x1 to m, BN, depthwise 3x3, 1x1 back, BN), and the
    sharpDARTS ImageNet preset's network: each choke op grows by (2 C + 9 + 2)(96 - 32) from m = 32 to 96."""
    C = 8
    for m in (32, 96):
        op = sharp_op("choke_conv_3x3", C, 1, False, choke=m)
        assert sum(p.numel() for p in op.parameters()) == C * 9 + C * m + 2 * m + m * 9 + m * C + 2 * C
    c = train_preset_config("sharpdarts-imagenet-eval").validate()
    assert (c.choke_channels, c.genotype, c.network, c.channels, c.layers) == (96, "SHARP_DARTS", "imagenet", 48, 14)
    assert train_preset_config("sharpdarts-cifar10-eval").choke_channels == 32
    genotype = get_genotype("SHARP_DARTS")
    small = train_preset_config("sharpdarts-imagenet-eval", channels=8, layers=5, auxiliary=False).validate()
    net96 = build_network_for(small, genotype, 10, 3)
    net32 = NetworkImageNet(genotype, C=8, layers=5, auxiliary=False, num_classes=10)
    chokes = [op for cell in net96.cells
              for (name, _), op in zip(genotype.reduce if cell.reduction else genotype.normal, cell.ops)
              if "choke" in name]
    assert chokes and all(op.C_mid == 96 for op in chokes)
    expected = sum((2 * op.depthwise1.in_channels + 11) * 64 for op in chokes)
    assert sum(p.numel() for p in net96.parameters()) - sum(p.numel() for p in net32.parameters()) == expected
    assert net96.hparams["choke"] == 96 and "choke" not in net32.hparams
    rebuilt = network_from_hparams(net96.hparams)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in net96.parameters())
    with pytest.raises(DartsNasError, match="--choke-channels must be positive"):
        train_preset_config("sharpdarts-imagenet-eval", choke_channels=0).validate()


def test_hypercuboid_searches_recorded_before_the_affine_setting_keep_their_plain_bns():
    """A config.json or checkpoint of a HyperCuboid search made before --hypercuboid-affine existed names neither the
    setting nor the model's `affine`: it rebuilds the supernet it ran (no BN parameters), while a new search gets
    the authors' affine BNs."""
    from darts_nas.config import SearchConfig
    from darts_nas.spaces import get_space

    old = SearchConfig().to_dict()
    old.pop("hypercuboid_affine")
    assert SearchConfig.from_record(old).hypercuboid_affine is False
    assert SearchConfig.from_record({**old, "hypercuboid_affine": True}).hypercuboid_affine is True
    assert SearchConfig.from_dict(old).hypercuboid_affine is True  # presets and flags: the default
    space = get_space("hypercuboid")
    plain, affine = space(C=4, layers=2), space(C=4, layers=2, affine=True)
    bn = lambda m: sum(p.numel() for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)
                       for p in mod.parameters())
    assert bn(plain) == 0 and bn(affine) > 0
