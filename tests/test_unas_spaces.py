"""UNAS' two search spaces (arXiv:1912.07651): its DARTS-style cell (two (input, op) slots per node, the pair
penalty) and the ProxylessNAS / MobileNetV2 space (21 MBConv layers), each against an independent computation,
and both through the command line (search, derive, resume, train)."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from darts_nas.cli import main
from darts_nas.errors import DartsNasError
from darts_nas.genotypes import Genotype, ProxylessArch, load_genotype
from darts_nas.genotypes.mobile import CHANGE_LAYERS, MB_OPS, MOBILE_PRIMITIVES, MOBILE_PUBLISHED
from darts_nas.strategies.latency import random_architecture
from darts_nas.nets import build_network, create_model, list_models
from darts_nas.nets.mobile import ProxylessNetwork
from darts_nas.spaces import ProxylessSearchModel, UnasDartsSearchModel
from darts_nas.spaces.unas_darts import UNAS_PRIMITIVES, pair_overlap
from darts_nas.strategies.bilevel import alpha_step


def _randomize(model, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for a in model.alphas.values():
            a.copy_(scale * torch.randn(a.shape, generator=g, dtype=a.dtype))


# -- UNAS' DARTS-style cell ----------------------------------------------------------------------------------------
def slotwise_forward(model, x):
    """The supernet by the definition, slot by slot: node i = sum_s sum_j sum_o p_in_s[j] p_op_s[o] op_{j,o}(s_j),
    with the softmax of each categorical (written without the combined edge weights the model uses)."""
    p = {k: torch.softmax(a, -1) for k, a in model.alphas.items()}
    net = model.net
    s0 = s1 = net.stem(x)
    for cell in net.cells:
        kind = "reduce" if cell.reduction else "normal"
        states = [cell.preprocess0(s0), cell.preprocess1(s1)]
        for i in range(model.steps):
            node = 0
            for s in range(2):
                p_in, p_op = p[f"{kind}_in{i}"][s], p[f"{kind}_ops"][2 * i + s]
                for j in range(i + 2):
                    edge = cell.edges[cell.edge_index(i, j)]
                    for o in range(len(UNAS_PRIMITIVES)):
                        node = node + p_in[j] * p_op[o] * edge.op_for_column(o)(states[j])
            states.append(node)
        s0, s1 = s1, torch.cat(states[2:], 1)
    return net.classifier(torch.flatten(F.adaptive_avg_pool2d(s1, 1), 1))


def test_the_unas_cell_computes_its_slots_definition():
    torch.manual_seed(0)
    model = UnasDartsSearchModel(C=4, layers=3, steps=3).double()
    _randomize(model)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(model(x), slotwise_forward(model, x), atol=1e-10)


def test_the_unas_cell_runs_only_the_chosen_pairs_with_one_hot_weights():
    torch.manual_seed(0)
    model = UnasDartsSearchModel(C=4, layers=3, steps=3).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    arch = random_architecture(model, torch.Generator().manual_seed(3))
    # node 1's two slots choose the same (input, op) pair: that op is weighted twice
    arch["normal_in1"][:] = F.one_hot(torch.tensor([2, 2]), 3).double()
    arch["normal_ops"][2:4] = F.one_hot(torch.tensor([4, 4]), 7).double()
    with torch.no_grad(), model.fixed_op_weights(arch, hard=True):
        hard = model(x)
        chosen = model.selections(model.op_weights())
    with torch.no_grad(), model.fixed_op_weights(arch):
        dense = model(x)
    assert torch.allclose(hard, dense, atol=1e-12)
    assert chosen["normal"][model.net.cells[0].edge_index(1, 2)] == (4,)
    assert sum(len(ops) for ops in chosen["normal"]) <= 2 * model.steps
    assert all(ops == () or ops for ops in chosen["reduce"])


def test_the_pair_penalty_by_enumerating_pairs():
    model = UnasDartsSearchModel(C=4, layers=3, steps=3, pair_penalty=0.2).double()
    _randomize(model, seed=1)
    p = {k: torch.softmax(a.detach(), -1) for k, a in model.alphas.items()}
    total = 0.0
    for cell in ("normal", "reduce"):
        for i in range(3):
            ins, ops = p[f"{cell}_in{i}"], p[f"{cell}_ops"][2 * i: 2 * i + 2]
            for j, o in itertools.product(range(i + 2), range(7)):  # P(both slots choose pair (j, o))
                total += float(ins[0, j] * ops[0, o] * ins[1, j] * ops[1, o])
    assert model.arch_penalty().item() == pytest.approx(0.2 * total, rel=1e-12)
    # and its gradient enters every strategy's alpha step: with no other gradient, one step lowers it
    before = model.arch_penalty().item()
    opt = torch.optim.SGD(model.arch_parameters(), lr=1.0)
    alpha_step(model, [torch.zeros_like(a) for a in model.arch_parameters()], opt)
    assert model.arch_penalty().item() < before
    assert UnasDartsSearchModel(C=4, layers=3, pair_penalty=0.0).arch_penalty() is None
    w = {k: torch.full_like(a, 1.0) for k, a in model.alphas.items()}
    assert pair_overlap(w["normal_ops"], [w[f"normal_in{i}"] for i in range(3)]).item() == 7 * (2 + 3 + 4)


def test_the_unas_cell_derives_each_slots_strongest_input_and_op():
    model = UnasDartsSearchModel(C=4, layers=3, steps=4)
    expected = {"normal": [("sep_conv_5x5", 0), ("skip_connect", 1), ("dil_conv_3x3", 2), ("sep_conv_3x3", 0),
                           ("avg_pool_3x3", 3), ("sep_conv_7x7", 1), ("max_pool_3x3", 4), ("sep_conv_5x5", 4)],
                "reduce": [("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 2),
                           ("sep_conv_7x7", 0), ("dil_conv_3x3", 3), ("max_pool_3x3", 2), ("skip_connect", 4)]}
    with torch.no_grad():
        for a in model.alphas.values():
            a.zero_()
        for cell, pairs in expected.items():
            for k, (op, j) in enumerate(pairs):
                model.alphas[f"{cell}_ops"][k, UNAS_PRIMITIVES.index(op)] = 2.0
                model.alphas[f"{cell}_in{k // 2}"][k % 2, j] = 1.0
    g = model.genotype()
    assert list(g.normal) == expected["normal"] and list(g.reduce) == expected["reduce"]
    assert g.normal_concat == (2, 3, 4, 5)
    # the one-hot rows a latency table and the recorded latency use are this genotype's
    derived = model.derived_weights()
    assert derived["normal_in3"].argmax(-1).tolist() == [4, 4]
    assert UnasDartsSearchModel.parameter_free_ops(g) == 7


def test_the_unas_published_cells_build_in_the_zoo():
    for name in ("UNAS_CIFAR10", "UNAS_CIFAR100", "UNAS_IMAGENET"):
        g = load_genotype(name)
        assert isinstance(g, Genotype) and all(op in UNAS_PRIMITIVES for op, _ in (*g.normal, *g.reduce))
        assert f"{name.lower()}_cifar10" in list_models()
    net = create_model("unas_cifar10_cifar10", C=8, layers=5)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# -- the ProxylessNAS space ---------------------------------------------------------------------------------------
def mbconv_params(c_in, c_out, k, e):
    """Weights of an MBConv counted by hand: expansion 1x1 (if e > 1), depthwise k x k, projection 1x1, and the
    scale and shift of each of its BNs."""
    mid = c_in * e
    expand = (c_in * mid + 2 * mid) if e > 1 else 0
    return expand + mid * k * k + 2 * mid + mid * c_out + 2 * c_out


def proxyless_params(ops, classes=1000):
    stages = [32] * 4 + [56] * 4 + [112] * 4 + [128] * 4 + [256] * 4 + [432]
    total = 3 * 40 * 9 + 2 * 40 + mbconv_params(40, 24, 3, 1)          # stem conv + BN, first MBConv
    c_in = 24
    for op, c_out in zip(ops, stages):
        if op != "zero":
            k, e = int(op[4]), int(op[-1])
            total += mbconv_params(c_in, c_out, k, e)
        c_in = c_out
    return total + 432 * 1728 + 2 * 1728 + 1728 * classes + classes    # head conv + BN, classifier


@pytest.mark.parametrize("name", sorted(MOBILE_PUBLISHED))
def test_the_proxyless_network_matches_a_hand_count_and_its_shapes(name):
    arch = MOBILE_PUBLISHED[name]
    net = build_network(arch, "imagenet")
    assert sum(p.numel() for p in net.parameters()) == proxyless_params(arch.ops)
    sides = []
    hooks = [b.register_forward_hook(lambda m, i, o: sides.append(tuple(o.shape[1:]))) for b in net.blocks]
    net.eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    for h in hooks:
        h.remove()
    # every layer (a skipped one passes its input on): its stage's channels at 112 / 2^(stride-2 layers so far)
    stages = [32] * 4 + [56] * 4 + [112] * 4 + [128] * 4 + [256] * 4 + [432]
    assert len(sides) == 21
    for (c, h, w), layer in zip(sides, range(1, 22)):
        side = 112 // 2 ** sum(s <= layer for s in (1, 5, 9, 17))
        assert (c, h, w) == (stages[layer - 1], side, side)
    assert sides[-1] == (432, 7, 7)


def test_proxylessnas_gpu_has_its_published_size():
    # ProxylessNAS (arXiv:1812.00332), table 2: the GPU model, 7.1M parameters and 465M multiply-adds.
    from darts_nas.nets.profile import count_multiply_adds

    net = create_model("proxyless_gpu_imagenet")
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 7.1
    assert round(count_multiply_adds(net, 224) / 1e6) == 465


def test_proxyless_arch_text_json_names_and_rules():
    arch = MOBILE_PUBLISHED["UNAS_PROXYLESS"]
    assert load_genotype(arch.to_text()) == arch == ProxylessArch.from_dict(arch.to_dict())
    assert load_genotype("unas-proxyless") == arch
    assert arch.ops[:5] == ("mb_k5_e3", "mb_k3_e3", "zero", "zero", "mb_k7_e3") and arch.parameter_free_ops() == 5
    with pytest.raises(DartsNasError, match="layer 5 changes the channel count"):
        ProxylessArch(tuple("zero" if i == 5 else "mb_k3_e3" for i in range(1, 22)))
    with pytest.raises(DartsNasError, match="21 searchable layers, got 3"):
        ProxylessArch(("mb_k3_e3",) * 3)
    with pytest.raises(DartsNasError, match="unknown op 'sep_conv_3x3'"):
        ProxylessArch(("sep_conv_3x3",) * 21)
    with pytest.raises(DartsNasError, match="21 searchable layers"):
        ProxylessNetwork(arch, layers=20)
    with pytest.raises(DartsNasError, match="trains in the proxyless network"):
        from darts_nas.nets import network_kind_for
        network_kind_for(arch, "cifar", "cifar")


def test_the_proxyless_supernet_layer_is_its_definition_and_one_hot_runs_one_op():
    torch.manual_seed(0)
    model = ProxylessSearchModel(C=8, num_classes=10, stem_stride=1).double()
    _randomize(model, seed=2)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    # a skippable layer: x + sum_o p_o MBConv_o(x), `zero` adding nothing; a channel-changing one: no shortcut
    net = model.net
    p = {k: torch.softmax(a, -1) for k, a in model.alphas.items()}
    h = net.stem(x)
    for layer, (group, row) in zip(net.layers, net.group_rows):
        mix = sum(p[group][row][k + layer.offset] * op(h) for k, op in enumerate(layer.ops))
        h = h + mix if layer.skip else mix
    by_hand = net.classifier(torch.flatten(F.adaptive_avg_pool2d(net.head(h), 1), 1))
    assert torch.allclose(model(x), by_hand, atol=1e-10)
    arch = random_architecture(model, torch.Generator().manual_seed(5))
    with torch.no_grad(), model.fixed_op_weights(arch, hard=True):
        hard = model(x)
    with torch.no_grad(), model.fixed_op_weights(arch):
        dense = model(x)
    assert torch.allclose(hard, dense, atol=1e-12)


def test_the_proxyless_space_derives_each_layers_strongest_op():
    model = ProxylessSearchModel(C=8, num_classes=10, stem_stride=1)
    wanted = [MB_OPS[layer % 6] if layer in CHANGE_LAYERS else MOBILE_PRIMITIVES[layer % 7] for layer in range(1, 22)]
    cols = model.columns()
    with torch.no_grad():
        for (group, row), op in zip(model.net.group_rows, wanted):
            model.alphas[group][row].zero_()
            model.alphas[group][row, cols[group].index(op)] = 1.0
    arch = model.genotype()
    assert list(arch.ops) == wanted
    assert [g for g, _ in model.net.group_rows].count("change") == 6
    assert model.edge_names()["change"] == [f"layer {n}" for n in CHANGE_LAYERS]


# -- both spaces through the command line ---------------------------------------------------------------------------
SPACE_FLAGS = {
    "unas-darts": ["--preset", "unas-cifar10", "--channels", "4", "--layers", "3", "--nodes", "2"],
    "proxyless": ["--preset", "unas-proxyless-cifar10", "--channels", "8"],
}


@pytest.mark.parametrize("space", sorted(SPACE_FLAGS))
def test_each_unas_space_runs_search_derive_resume_and_train(space, tmp_path, capsys):
    flags = [*SPACE_FLAGS[space], "--dataset", "synthetic", "--synthetic-size", "80", "--image-size", "8",
             "--batch-size", "8", "--epochs", "2", "--arch-warmup-epochs", "0", "--hessian-every", "0",
             "--no-progress", "--log-every", "2"]
    full, part, trained = tmp_path / "full", tmp_path / "part", tmp_path / "trained"
    assert main(["search", *flags, "--out", str(full)]) == 0
    assert main(["search", *flags, "--out", str(part), "--stop-after", "1"]) == 0
    assert main(["search", "--resume", str(part)]) == 0
    capsys.readouterr()

    def records(d):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (d / "metrics.jsonl").read_text().splitlines()]

    assert records(part) == records(full) and len(records(full)) == 2
    assert (part / "genotype.json").read_text() == (full / "genotype.json").read_text()
    assert main(["derive", str(full), "--alphas"]) == 0
    out = capsys.readouterr().out
    kind = Genotype if space == "unas-darts" else ProxylessArch
    derived = load_genotype(str(full))
    assert isinstance(derived, kind) and derived.to_text() in out
    assert main(["plot", str(full)]) == 0 and (full / "plots" / "alphas.svg").is_file()
    svg = (full / "plots" / "alphas.svg").read_text()
    first = "normal_ops" if space == "unas-darts" else "skippable"
    assert f"alpha|{first}|0|sep_conv_3x3" in svg if space == "unas-darts" else f"alpha|{first}|0|zero" in svg
    capsys.readouterr()
    extra = ["--layers", "3", "--channels", "4"] if space == "unas-darts" else ["--layers", "21", "--channels", "8"]
    assert main(["train", "--genotype", str(full), "--dataset", "synthetic", "--synthetic-size", "32",
                 "--image-size", "8", "--batch-size", "16", "--epochs", "1", "--no-progress", *extra,
                 "--out", str(trained)]) == 0
    hparams = json.loads((trained / "network.json").read_text())["hparams"]
    assert hparams["kind"] == ("cifar" if space == "unas-darts" else "proxyless")
    assert main(["evaluate", str(trained)]) == 0


def test_unas_optimizer_settings_and_their_rules():
    from darts_nas.config import SearchConfig, preset_config

    with pytest.raises(DartsNasError, match="--weight-optimizer adam goes with first-order"):
        SearchConfig(weight_optimizer="adam", order=2).validate()
    with pytest.raises(DartsNasError, match="--weight-optimizer adam goes with first-order"):
        SearchConfig(weight_optimizer="adam", strategy="implicit").validate()
    c = preset_config("unas-cifar10")
    assert (c.estimator, c.relaxation, c.tau_max, c.tau_min, c.gen_gap, c.pair_penalty) == \
        ("unas", "gumbel", 0.4, 0.4, 0.5, 0.2)
    assert (c.weight_optimizer, c.lr, c.lr_min, c.arch_lr, c.arch_lr_min, c.epochs, c.arch_warmup_epochs) == \
        ("adam", 3e-4, 1e-4, 1e-3, 3e-4, 100, 15)


def test_the_weights_adam_and_the_alphas_cosine_schedule_in_a_run(tmp_path):
    from darts_nas.config import preset_config
    from darts_nas.run.common import cosine_lr
    from darts_nas.run.dispatch import start_search

    c = preset_config("unas-cifar10", dataset="synthetic", synthetic_size=80, image_size=8, channels=4, layers=3,
                      nodes=2, batch_size=8, epochs=4, progress=False, out=str(tmp_path / "r"))
    run = start_search(c, tmp_path / "r", echo=lambda *a: None)
    assert isinstance(run.w_opt, torch.optim.Adam)
    for epoch in range(4):
        run.start_epoch(epoch, run.lr(epoch))
        assert run.a_opt.param_groups[0]["lr"] == pytest.approx(cosine_lr(epoch, 4, 1e-3, 3e-4))
        assert run.w_opt.param_groups[0]["lr"] == pytest.approx(cosine_lr(epoch, 4, 3e-4, 1e-4))


def test_a_latency_table_and_a_latency_penalized_search_in_each_unas_space(tmp_path, capsys):
    for space, flags in (("unas-darts", ["--preset", "unas-cifar10", "--channels", "4", "--layers", "3",
                                         "--nodes", "2"]),
                         ("proxyless", ["--preset", "unas-proxyless-cifar10", "--channels", "8"])):
        common = [*flags, "--dataset", "synthetic", "--synthetic-size", "80", "--image-size", "8"]
        table = tmp_path / f"{space}.json"
        assert main(["latency-table", *common, "--samples", "10", "--repeats", "2", "--images", "4",
                     "--table", str(table)]) == 0
        run = tmp_path / space
        assert main(["search", *common, "--batch-size", "8", "--epochs", "1", "--arch-warmup-epochs", "0",
                     "--hessian-every", "0", "--no-progress", "--latency-table", str(table), "--latency-target", "1",
                     "--latency-weight", "0.1", "--latency-warmup-steps", "0", "--out", str(run)]) == 0
        record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert record["latency_ms"] > 0 and record["latency_estimate_ms"] > 0
    capsys.readouterr()


def test_info_counts_and_times_both_networks(capsys):
    assert main(["info", "UNAS_PROXYLESS", "--dataset", "imagenet", "--image-size", "64", "--latency", "--repeats",
                 "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["params"] == proxyless_params(MOBILE_PUBLISHED["UNAS_PROXYLESS"].ops)
    assert record["latency_ms"] > 0 and record["latency_device"] == "cpu"
    assert main(["info", "UNAS_CIFAR10", "--channels", "8", "--layers", "5", "--latency", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "latency:" in out and "median of 2 forwards of 1 image, eval mode, cpu" in out
    assert main(["info", "UNAS_CIFAR10", "--latency", "--images", "0"]) == 2
    assert "--images and --repeats must be positive" in capsys.readouterr().err
