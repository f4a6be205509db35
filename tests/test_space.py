"""The DARTS CNN search space: shapes, sizes and the op definitions of DARTS (arXiv:1806.09055) section 2.1."""

import pytest
import torch
import torch.nn.functional as F

from darts_nas.errors import DartsNasError
from darts_nas.genotypes import PRIMITIVES
from darts_nas.ops import FactorizedReduce, Zero, darts_op
from darts_nas.spaces import DartsCNNSearchModel, MixedOp
from darts_nas.spaces.darts_cnn import SearchCell, edge_weights


def test_alphas_are_parameters_of_paper_shape_and_scale():
    torch.manual_seed(0)
    model = DartsCNNSearchModel()
    normal, reduce = model.arch_parameters()
    assert normal.shape == reduce.shape == (14, 8)
    assert all(isinstance(a, torch.nn.Parameter) for a in (normal, reduce))
    std = torch.cat([normal.flatten(), reduce.flatten()]).std().item()
    assert 5e-4 < std < 2e-3  # 1e-3 * N(0, 1)
    weight_ids = {id(p) for p in model.weight_parameters()}
    assert not weight_ids & {id(normal), id(reduce)}
    assert len(weight_ids) + 2 == len(list(model.parameters()))


def test_supernet_size_matches_the_paper_setting():
    """C=16, 8 cells, 10 classes: about 1.9M weights (DARTS, arXiv:1806.09055, section 2.1)."""
    n = sum(p.numel() for p in DartsCNNSearchModel().weight_parameters())
    assert 1.85e6 < n < 1.95e6


def test_search_bn_uses_batch_statistics_and_has_no_buffers():
    model = DartsCNNSearchModel(C=4, layers=3)
    assert list(model.net.buffers()) == []  # the supernet is a pure function of its parameters
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not bn.track_running_stats for bn in bns)
    # affine only in the stem BN; ops and preprocessing are affine-free
    assert sum(bn.affine for bn in bns) == 1


def naive_mixed(mixed: MixedOp, x, w, stride):
    """sum over all 8 ops, `none` included, each op applying its own ReLU."""
    ops = iter(mixed.ops)
    out = 0
    for k, name in enumerate(PRIMITIVES):
        op = Zero(stride) if name == "none" else next(ops)
        out = out + w[k] * op(x)
    return out


def test_mixed_op_equals_the_full_weighted_sum():
    torch.manual_seed(1)
    for stride in (1, 2):
        mixed = MixedOp(6, stride).double()
        x = torch.randn(3, 6, 8, 8, dtype=torch.float64)
        w = torch.softmax(torch.randn(8, dtype=torch.float64), 0)
        w[0] = 0.9  # a heavy `none` weight must still contribute exactly nothing
        assert torch.allclose(mixed(x, w), naive_mixed(mixed, x, w, stride), rtol=0, atol=1e-12)


def test_ops_keep_or_halve_the_resolution():
    x = torch.randn(2, 8, 16, 16)
    for name in PRIMITIVES + ("sep_conv_7x7", "conv_7x1_1x7"):
        for stride in (1, 2):
            for search in (True, False):
                y = darts_op(name, 8, stride, search)(x)
                assert y.shape == (2, 8, 16 // stride, 16 // stride), (name, stride)
    assert FactorizedReduce(8, 12)(x).shape == (2, 12, 8, 8)


def test_pooling_semantics():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    avg = darts_op("avg_pool_3x3", 1, 1, search=False)(x)
    assert avg[0, 0, 0, 0] == (0 + 1 + 4 + 5) / 4  # padding not counted
    mx = darts_op("max_pool_3x3", 1, 1, search=False)(x)
    assert mx[0, 0, 0, 0] == 5
    search_pool = darts_op("max_pool_3x3", 1, 1, search=True)
    assert isinstance(search_pool.bn, torch.nn.BatchNorm2d) and not search_pool.bn.affine


def test_sep_conv_structure():
    op = darts_op("sep_conv_3x3", 4, 2, search=False)
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1), (3, 3), (1, 1)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1), (1, 1)]
    assert [c.groups for c in convs] == [4, 1, 4, 1]
    assert all(c.bias is None for c in convs)
    dil = darts_op("dil_conv_5x5", 4, 1, search=False)
    assert [m.dilation for m in dil.modules() if isinstance(m, torch.nn.Conv2d)] == [(2, 2), (1, 1)]


def test_reduction_cells_and_channel_growth():
    model = DartsCNNSearchModel(C=4, layers=8)
    cells = model.net.cells
    assert [c.reduction for c in cells] == [False, False, True, False, False, True, False, False]
    assert model.net.classifier.in_features == 4 * 4 * 4  # multiplier * C * 2 * 2
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_channels_last_computes_the_same_function():
    torch.manual_seed(3)
    model = DartsCNNSearchModel(C=4, layers=3, steps=2).double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])

    def outputs():
        model.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        return logits.detach().clone(), [a.grad.clone() for a in model.arch_parameters()]

    ref_logits, ref_grads = outputs()
    model.use_channels_last()
    logits, grads = outputs()
    assert torch.allclose(logits, ref_logits, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# PC-DARTS: partial channel connections and edge normalization
# ---------------------------------------------------------------------------------------------------------------
def test_partial_channel_mixed_op_follows_the_pc_darts_definition():
    """The first C/K channels through the weighted ops, the rest bypassed (2x2 max-pooled when strided), then
    channel g * (C/K) + c of the concatenation moves to c * K + g."""
    torch.manual_seed(4)
    C, K = 8, 4
    for stride in (1, 2):
        mixed = MixedOp(C, stride, partial=K).double()
        x = torch.randn(3, C, 8, 8, dtype=torch.float64)
        w = torch.softmax(torch.randn(8, dtype=torch.float64), 0)
        processed = naive_mixed(mixed, x[:, : C // K], w, stride)
        bypass = x[:, C // K:] if stride == 1 else F.max_pool2d(x[:, C // K:], 2, 2)
        cat = torch.cat([processed, bypass], 1)
        expected = torch.empty_like(cat)
        for g in range(K):
            for c in range(C // K):
                expected[:, c * K + g] = cat[:, g * (C // K) + c]
        assert torch.allclose(mixed(x, w), expected, rtol=0, atol=1e-12)
        assert all(m.in_channels in (C // K, 1) or m.groups == C // K
                   for m in mixed.modules() if isinstance(m, torch.nn.Conv2d))


def test_edge_normalization_weights_each_nodes_inputs():
    betas = torch.randn(5, dtype=torch.float64)
    ew = edge_weights(betas, steps=2)
    torch.testing.assert_close(ew[:2], torch.softmax(betas[:2], 0))
    torch.testing.assert_close(ew[2:], torch.softmax(betas[2:], 0))
    torch.manual_seed(5)
    cell = SearchCell(2, 2, 6, 6, 6, reduction=False, reduction_prev=False).double()
    s0, s1 = torch.randn(4, 6, 5, 5, dtype=torch.float64), torch.randn(4, 6, 5, 5, dtype=torch.float64)
    w = torch.softmax(torch.randn(5, 8, dtype=torch.float64), -1)
    h0, h1 = cell.preprocess0(s0), cell.preprocess1(s1)
    e = cell.edges
    node0 = ew[0] * e[0](h0, w[0]) + ew[1] * e[1](h1, w[1])
    node1 = ew[2] * e[2](h0, w[2]) + ew[3] * e[3](h1, w[3]) + ew[4] * e[4](node0, w[4])
    torch.testing.assert_close(cell(s0, s1, w, ew), torch.cat([node0, node1], 1), rtol=0, atol=1e-12)


def test_pc_darts_derivation_ranks_edges_by_edge_weight_times_op_weight():
    model = DartsCNNSearchModel(C=8, layers=3, steps=2, partial_channels=4, edge_normalization=True)
    assert len(model.arch_parameters()) == 4 and model.betas["normal"].shape == (5,)
    with torch.no_grad():
        for a in model.arch_parameters():
            a.zero_()
        # node 1 reads edges 2 (state 0), 3 (state 1), 4 (node 0). By op weight alone edge 2 is the strongest...
        model.alphas["normal"][2, PRIMITIVES.index("sep_conv_3x3")] = 3.0
        model.alphas["normal"][3, PRIMITIVES.index("dil_conv_3x3")] = 2.0
        model.alphas["normal"][4, PRIMITIVES.index("max_pool_3x3")] = 1.0
    plain = DartsCNNSearchModel(C=8, layers=3, steps=2, partial_channels=4)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("betas")})
    assert sorted(plain.genotype().normal[2:]) == [("dil_conv_3x3", 1), ("sep_conv_3x3", 0)]
    with torch.no_grad():  # ...but its edge weight is small
        model.betas["normal"][2] = -4.0
    assert sorted(model.genotype().normal[2:]) == [("dil_conv_3x3", 1), ("max_pool_3x3", 2)]
    rebuilt = DartsCNNSearchModel(**model.hparams)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.genotype() == model.genotype()


def test_partial_channels_must_divide_the_channels():
    with pytest.raises(DartsNasError, match="partial channels"):
        DartsCNNSearchModel(C=6, partial_channels=4)
