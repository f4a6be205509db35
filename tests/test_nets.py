"""Evaluation networks: channel trace, parameter counts, multiply-adds, every published genotype, drop-path, zoo."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from darts_nas import create_model
from darts_nas.errors import DartsNasError
from darts_nas.genotypes import MOBILE_PUBLISHED, PUBLISHED, Genotype, get_genotype
from darts_nas.nets import (EvalCell, NetworkCIFAR, NetworkImageNet, build_network, drop_path, list_models,
                            network_from_hparams)
from darts_nas.nets.profile import count_multiply_adds, count_parameters, profile_network

# DARTS (arXiv:1806.09055) section 3.3, written out from the text, not from the code: (C_prev_prev, C_prev, C) of the 20 cells.
PAPER_TRACE = ([(108, 108, 36), (108, 144, 36)] + [(144, 144, 36)] * 4 + [(144, 144, 72), (144, 288, 72)]
               + [(288, 288, 72)] * 5 + [(288, 288, 144), (288, 576, 144)] + [(576, 576, 144)] * 5)


@pytest.fixture(scope="module")
def darts_v2_cifar():
    return create_model("darts_v2_cifar10")


def test_cifar_channel_trace_is_the_papers(darts_v2_cifar):
    assert darts_v2_cifar.channel_trace() == PAPER_TRACE
    assert [c.reduction for c in darts_v2_cifar.cells] == [i in (6, 13) for i in range(20)]
    assert darts_v2_cifar.aux_position == 13
    assert darts_v2_cifar.auxiliary_head.features[0].in_channels == 576  # output of cell 13: 4 x 144
    assert darts_v2_cifar.classifier.in_features == 576


def test_parameter_counts_match_the_papers(darts_v2_cifar):
    # DARTS paper tables 1 and 3: 3.3M (CIFAR-10), 4.7M (ImageNet mobile), auxiliary head excluded.
    p = count_parameters(darts_v2_cifar)
    aux = sum(q.numel() for q in darts_v2_cifar.auxiliary_head.parameters())
    assert round(p / 1e6, 1) == 3.3
    assert count_parameters(darts_v2_cifar, include_auxiliary=True) == p + aux
    assert sum(q.numel() for q in darts_v2_cifar.parameters()) == p + aux
    imagenet = create_model("darts_v2_imagenet")
    assert round(count_parameters(imagenet) / 1e6, 1) == 4.7
    # Other papers' figures on the same networks: PC-DARTS 3.6M / 5.3M, P-DARTS 3.4M / 4.9M.
    assert round(count_parameters(create_model("pc_darts_cifar10")) / 1e6, 1) == 3.6
    assert round(count_parameters(create_model("pdarts_cifar10")) / 1e6, 1) == 3.4
    assert round(count_parameters(create_model("pc_darts_imagenet")) / 1e6, 1) == 5.3
    assert round(count_parameters(create_model("pdarts_imagenet")) / 1e6, 1) == 4.9
    # CIFAR-100 changes only the classifiers.
    c100 = create_model("darts_v2_cifar100")
    assert count_parameters(c100) - p == 90 * (576 + 1)


def test_multiply_add_convention_on_a_small_net():
    """FLOP counter / 2 equals multiply-adds computed by hand, grouped convs included."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                        nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False),
                        nn.Conv2d(8, 16, 1, stride=2, bias=False),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    hw = 12 * 12
    expected = 8 * 3 * 9 * hw + 8 * 25 * hw + 16 * 8 * 6 * 6 + 16 * 10
    assert count_multiply_adds(net, 12) == expected


def _hand_count(model, size):
    """Multiply-adds of every conv and linear layer from their shapes, recorded by forward hooks."""
    total = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total.append(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            total.append(out.numel() * m.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return sum(total)


def test_multiply_adds_of_the_imagenet_network():
    model = create_model("darts_v2_imagenet")
    p = profile_network(model, 224)
    assert model.training  # profiling restores the mode
    assert p.multiply_adds == _hand_count(model, 224)
    assert p.multiply_adds < 600e6  # the mobile setting


def _check_forward_backward(model, size, classes):
    model.train()
    model.drop_path_prob = 0.1
    x = torch.randn(2, 3, size, size)
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == (2, classes) and aux.shape == (2, classes)
    (F.cross_entropy(logits, torch.tensor([0, 1])) + 0.4 * F.cross_entropy(aux, torch.tensor([1, 0]))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    logits, aux = model.forward_with_aux(x)
    assert aux is None and logits.shape == (2, classes)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_every_published_genotype_trains_on_both_networks(name):
    g = get_genotype(name)
    _check_forward_backward(NetworkCIFAR(g, C=8, num_classes=10, layers=5), 32, 10)
    _check_forward_backward(NetworkImageNet(g, C=8, num_classes=7, layers=5), 64, 7)


def test_nasnet_and_amoebanet_cells_have_five_nodes_and_their_concat():
    net = NetworkCIFAR(get_genotype("AmoebaNet"), C=8, layers=5)
    normal, reduce = net.cells[0], net.cells[1]
    assert len(normal.ops) == 10 and normal.concat == (4, 5, 6) and normal.multiplier == 3
    assert reduce.reduction and reduce.concat == (3, 4, 6)
    # Each cell's output has multiplier * C channels, and the next cell's C_prev is that.
    trace = net.channel_trace()
    assert trace[0] == (24, 24, 8) and trace[1] == (24, 24, 16) and trace[2] == (24, 48, 16)
    nasnet = NetworkCIFAR(get_genotype("NASNet"), C=8, layers=5)
    assert nasnet.channel_trace()[:3] == [(24, 24, 8), (24, 40, 16), (40, 48, 16)]


def test_cell_wiring_against_hand_computation():
    """A parameter-free cell computed by hand: node2 = s0 + s1, node3 = avgpool(node2) + maxpool(s1),
    node4 = node3 + s0; output = [node4, node2] in that order (concat order honoured)."""
    g = Genotype(normal=[("skip_connect", 0), ("skip_connect", 1), ("avg_pool_3x3", 2), ("max_pool_3x3", 1),
                         ("skip_connect", 3), ("skip_connect", 0)], normal_concat=[4, 2],
                 reduce=[("skip_connect", 0), ("skip_connect", 1)], reduce_concat=[2])
    cell = EvalCell(g.normal, g.normal_concat, 5, 6, 4, reduction=False, reduction_prev=False).eval()
    s0, s1 = torch.randn(2, 5, 7, 7), torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        out = cell(s0, s1)
        p0, p1 = cell.preprocess0(s0), cell.preprocess1(s1)
    n2 = p0 + p1
    n3 = F.avg_pool2d(n2, 3, 1, 1, count_include_pad=False) + F.max_pool2d(p1, 3, 1, 1)
    n4 = n3 + p0
    torch.testing.assert_close(out, torch.cat([n4, n2], 1))


def test_reduction_cell_strides_only_the_input_edges():
    g = get_genotype("NASNet")  # its reduce cell has ('skip_connect', 3): stride 1, an identity
    cell = EvalCell(g.reduce, g.reduce_concat, 8, 8, 8, reduction=True, reduction_prev=False).eval()
    out = cell(torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8))
    assert out.shape == (1, 3 * 8, 4, 4)
    kinds = [type(op).__name__ for op in cell.ops]
    assert kinds[6] == "Identity"  # ('skip_connect', 3)
    assert kinds[5] == "SepConv" and cell.ops[5].first.depthwise.stride == (2, 2)  # ('sep_conv_5x5', 0)


def test_drop_path_keeps_the_expected_value():
    torch.manual_seed(0)
    n, p = 40_000, 0.3
    x = torch.ones(n, 2, 3, 3)
    y = drop_path(x, p)
    per_sample = y.reshape(n, -1)
    assert (per_sample == per_sample[:, :1]).all()  # one decision per sample
    kept = per_sample[:, 0] > 0
    values = per_sample[:, 0].unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.7)
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs((~kept).float().mean().item() - p) < 5 * sigma
    assert abs(y.mean().item() - 1.0) < 5 * sigma / 0.7
    assert drop_path(x, 0.0) is x


def test_drop_path_skips_identity_and_eval_mode():
    g_skip = Genotype(normal=[("skip_connect", 0), ("skip_connect", 1)], normal_concat=[2],
                      reduce=[("skip_connect", 0), ("skip_connect", 1)], reduce_concat=[2])
    cell = EvalCell(g_skip.normal, g_skip.normal_concat, 4, 4, 4, False, False).train()
    s0, s1 = torch.randn(8, 4, 5, 5), torch.randn(8, 4, 5, 5)
    torch.testing.assert_close(cell(s0, s1, 0.5), cell(s0, s1, 0.0))  # identities are never dropped
    g_conv = Genotype(normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], normal_concat=[2],
                      reduce=[("skip_connect", 0), ("skip_connect", 1)], reduce_concat=[2])
    cell = EvalCell(g_conv.normal, g_conv.normal_concat, 4, 4, 4, False, False).train()
    s0, s1 = torch.randn(64, 4, 5, 5), torch.randn(64, 4, 5, 5)
    with torch.no_grad():
        a = cell.ops[0](cell.preprocess0(s0))  # BN on batch statistics: the same batch gives the same outputs
        b = cell.ops[1](cell.preprocess1(s1))
        torch.manual_seed(1)
        out = cell(s0, s1, 0.5)
    # every sample is one of: both ops dropped, one kept, both kept, each kept op scaled by 1/keep = 2
    combos = torch.stack([torch.zeros_like(a), 2 * a, 2 * b, 2 * (a + b)], 0)
    err = (out.unsqueeze(0) - combos).flatten(2).abs().amax(2)   # [4 combos, 64 samples]
    best = err.argmin(0)
    assert (err.min(0).values < 1e-5).all()
    counts = torch.bincount(best, minlength=4)
    assert (counts > 0).all()  # with 64 samples at p=0.5 each combination occurs (chance of a miss < 1e-7)
    cell.eval()
    torch.testing.assert_close(cell(s0, s1, 0.5), cell(s0, s1, 0.0))


def test_channels_last_is_the_same_function():
    torch.manual_seed(0)
    a = NetworkCIFAR(get_genotype("DARTS_V2"), C=8, layers=5)
    b = NetworkCIFAR(get_genotype("DARTS_V2"), C=8, layers=5)
    b.load_state_dict(a.state_dict())
    b.use_channels_last()
    a.eval(), b.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)


def test_zoo_names_and_errors():
    names = list_models()
    assert "darts_v2_cifar10" in names and "amoebanet_imagenet" in names and "pc_darts_cifar100" in names
    assert len(names) == (len(PUBLISHED) + len(MOBILE_PUBLISHED)) * 3 and "unas_proxyless_imagenet" in names
    small = create_model("DARTS-V1_cifar100", C=8, layers=5)
    assert small.classifier.out_features == 100 and small.genotype == get_genotype("DARTS_V1")
    with pytest.raises(DartsNasError, match="unknown model 'resnet50'"):
        create_model("resnet50")
    with pytest.raises(DartsNasError, match="unknown genotype|cannot load genotype"):
        build_network("NOT_A_CELL", "cifar10")
    with pytest.raises(DartsNasError, match="no evaluation network for dataset 'mnist'"):
        build_network("DARTS_V2", "mnist")
    with pytest.raises(DartsNasError, match="C must be even"):
        build_network("DARTS_V2", "imagenet", C=7)
    with pytest.raises(DartsNasError, match="layers must be at least 3"):
        build_network("DARTS_V2", "cifar10", layers=2)


def test_network_rebuilds_from_hparams():
    a = NetworkImageNet(get_genotype("PDARTS"), C=8, num_classes=5, layers=4, auxiliary=False)
    b = network_from_hparams(a.hparams)
    assert type(b) is NetworkImageNet and b.genotype == a.genotype
    b.load_state_dict(a.state_dict())
    with pytest.raises(DartsNasError, match="cannot rebuild"):
        network_from_hparams({"kind": "resnet"})


def test_auxiliary_heads_are_the_papers():
    cifar = create_model("darts_v2_cifar10").auxiliary_head
    assert (cifar.pool.kernel_size, cifar.pool.stride, cifar.pool.count_include_pad) == (5, 3, False)
    kinds = [type(m).__name__ for m in cifar.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU"]
    assert cifar.features[0].kernel_size == (1, 1) and cifar.features[0].out_channels == 128
    assert cifar.features[3].kernel_size == (2, 2) and cifar.features[3].out_channels == 768
    # on the paper's 8x8 map: pool -> 2x2, 2x2 conv -> 1x1, so the classifier sees exactly 768 features
    x = torch.randn(2, 576, 8, 8)
    pooled = F.avg_pool2d(F.relu(x), 5, 3, 0, count_include_pad=False)
    cifar.eval()
    manual = cifar.classifier(torch.flatten(cifar.features(pooled), 1))
    torch.testing.assert_close(cifar(x), manual)
    by_hand = 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10
    assert sum(p.numel() for p in cifar.parameters()) == by_hand
    imagenet = NetworkImageNet(get_genotype("DARTS_V2"), C=8, num_classes=5, layers=5).auxiliary_head
    assert (imagenet.pool.kernel_size, imagenet.pool.stride) == (5, 2)
    assert [type(m).__name__ for m in imagenet.features] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "ReLU"]


@pytest.mark.parametrize("kind, size", [("cifar", 20), ("cifar", 24), ("cifar", 28), ("cifar", 16), ("cifar", 12),
                                        ("imagenet", 160), ("imagenet", 192), ("imagenet", 64)])
def test_every_accepted_input_size_trains(kind, size):
    """Sizes whose auxiliary map is too small for a 2x2 pooled output fall back to adaptive pooling."""
    g = get_genotype("DARTS_V2")
    net = NetworkCIFAR(g, C=4, layers=3) if kind == "cifar" else NetworkImageNet(g, C=4, layers=3, num_classes=10)
    logits, aux = net.train().forward_with_aux(torch.randn(2, 3, size, size))
    assert logits.shape == aux.shape == (2, 10)


def test_input_sizes_the_networks_cannot_take_are_refused():
    from darts_nas.nets import check_input_size
    with pytest.raises(DartsNasError, match="multiple of 4"):
        check_input_size("cifar", 30)
    with pytest.raises(DartsNasError, match="multiple of 32"):
        check_input_size("imagenet", 200)
    with pytest.raises(DartsNasError, match="multiple of 4"):
        profile_network(create_model("darts_v2_cifar10", C=4, layers=3), 30)
