"""The NAS-Bench-201 space: architecture strings, the supernet, the results table, the split file and the lookup
command."""

import itertools
import json
import os
from pathlib import Path

import pytest
import torch

from darts_nas.cli import main
from darts_nas.data import read_split_file
from darts_nas.errors import DartsNasError
from darts_nas.spaces.nb201_table import NB201Table
from darts_nas.spaces import NB201_PRIMITIVES, NB201Arch, NB201SearchModel
from darts_nas.spaces.nb201 import NB201SearchCell, ResidualReduction

OPTIMUM = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
REAL_TABLE = Path(os.environ.get("NB201_TABLE", Path(__file__).resolve().parents[2] / "shared" / "data" /
                                 "nas-bench-201" / "nb201_test_acc_200ep.csv"))


def fake_accuracy(ops) -> tuple[float, float, float]:
    """A made-up table: CIFAR-10 accuracy 50 + 7 per 3x3 conv + 3 per 1x1 conv - 1 per `none`."""
    c10 = 50 + 7 * ops.count("nor_conv_3x3") + 3 * ops.count("nor_conv_1x1") - ops.count("none")
    return c10, c10 - 20, c10 - 40


def write_fake_table(path):
    """Every one of the 15,625 cells, with fake_accuracy, in the benchmark's CSV format."""
    lines = ["index,arch_str,cifar10_test_acc,cifar100_test_acc,imagenet16_120_test_acc"]
    for i, ops in enumerate(itertools.product(NB201_PRIMITIVES, repeat=6)):
        lines.append(f"{i},{NB201Arch(ops).to_text()}," + ",".join(str(a) for a in fake_accuracy(ops)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def full_table(tmp_path_factory):
    return write_fake_table(tmp_path_factory.mktemp("nb201") / "table.csv")


# -- architecture strings ---------------------------------------------------------------------------------------
def test_arch_string_round_trips_for_every_cell():
    for ops in itertools.islice(itertools.product(NB201_PRIMITIVES, repeat=6), 0, None, 97):
        text = NB201Arch(ops).to_text()
        assert NB201Arch.from_text(text).ops == ops
        assert NB201Arch.from_dict(json.loads(json.dumps(NB201Arch(ops).to_dict()))).ops == ops


def test_arch_string_layout_by_hand():
    arch = NB201Arch.from_text(OPTIMUM)
    # edges in string order: 1<-0 | 2<-0, 2<-1 | 3<-0, 3<-1, 3<-2
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3",
                        "nor_conv_3x3")
    assert arch.parameter_free_ops() == 1
    assert NB201Arch.from_text(ALL_SKIP).parameter_free_ops() == 6
    # inputs listed out of order are the same cell
    swapped = "|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+|nor_conv_3x3~2|skip_connect~0|nor_conv_3x3~1|"
    assert NB201Arch.from_text(swapped).to_text() == OPTIMUM


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_arch_strings_are_refused(bad):
    with pytest.raises(DartsNasError):
        NB201Arch.from_text(bad)


# -- the supernet -----------------------------------------------------------------------------------------------
def test_network_structure():
    model = NB201SearchModel(C=16, cells_per_stage=5)
    net = model.net
    cells = [m for m in net.layers if isinstance(m, NB201SearchCell)]
    blocks = [m for m in net.layers if isinstance(m, ResidualReduction)]
    assert len(cells) == 15 and len(blocks) == 2
    assert [i for i, m in enumerate(net.layers) if isinstance(m, ResidualReduction)] == [5, 11]
    assert [c.edges[0].ops[-1].pool.kernel_size for c in cells[:1]] == [3]
    # channels 16 / 32 / 64 per stage, by the conv weights of the 3x3 op on the first edge of each stage's cells
    widths = [c.edges[0].op_for_column(3).conv.weight.shape[0] for c in cells]
    assert widths == [16] * 5 + [32] * 5 + [64] * 5
    assert model.alphas["cell"].shape == (6, 5)
    assert tuple(model(torch.randn(2, 3, 32, 32)).shape) == (2, 10)
    # the residual block: output = shortcut (2x2 avg pool, 1x1 conv) + two ReLU-conv-BN
    block = blocks[0]
    x = torch.randn(2, 16, 8, 8)
    expected = block.conv_b(block.conv_a(x)) + block.shortcut[1](torch.nn.functional.avg_pool2d(x, 2))
    torch.testing.assert_close(block(x), expected)


def test_cell_is_the_weighted_dag_by_hand():
    """With one-hot op weights the mixed cell computes exactly the chosen cell, written out by hand."""
    torch.manual_seed(0)
    cell = NB201SearchCell(4)
    x = torch.randn(2, 4, 6, 6)
    arch = NB201Arch.from_text("|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|skip_connect~2|")
    weights = torch.nn.functional.one_hot(torch.tensor([NB201_PRIMITIVES.index(o) for o in arch.ops]), 5).float()
    conv1 = cell.edges[0].op_for_column(2)
    conv3 = cell.edges[4].op_for_column(3)
    n1 = conv1(x)
    n2 = x + torch.nn.functional.avg_pool2d(n1, 3, 1, 1, count_include_pad=False)
    n3 = conv3(n1) + n2
    torch.testing.assert_close(cell(x, weights), n3)


def test_genotype_is_argmax_per_edge_with_none_allowed():
    model = NB201SearchModel(C=4, cells_per_stage=1)
    with torch.no_grad():
        model.alphas["cell"].zero_()
        for e, k in enumerate([0, 3, 1, 4, 2, 0]):
            model.alphas["cell"][e, k] = 1.0
    assert model.genotype().ops == ("none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")


def test_op_costs_count_parameters():
    model = NB201SearchModel(C=4, cells_per_stage=2)
    cost = model.op_costs()["cell"]
    # per edge: 1x1 conv 4*4, 3x3 conv 4*4*9 in stage 1, x4 in stage 2 (8 channels), x16 in stage 3; 2 cells each
    per_c2 = 2 * (1 + 4 + 16)
    torch.testing.assert_close(cost[0], torch.tensor([0.0, 0.0, 16 * per_c2, 144 * per_c2, 0.0]) / 1e6)


# -- the results table ------------------------------------------------------------------------------------------
def test_lookup_in_a_fixture_table(full_table):
    table = NB201Table.load(full_table)
    r = table.lookup(OPTIMUM)
    assert r.accuracies == dict(zip(("cifar10", "cifar100", "imagenet16-120"), fake_accuracy(NB201Arch.from_text(OPTIMUM).ops)))
    best = NB201Arch(("nor_conv_3x3",) * 6).to_text()
    assert table.lookup(best).rank == 1 and table.lookup(best).total == 15625


def test_lookup_of_the_published_cells():
    """The benchmark's own table: the optimum Single-DARTS finds at 94.36 and the all-skip collapse at 54.30."""
    if not REAL_TABLE.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not at {REAL_TABLE} (set NB201_TABLE)")
    table = NB201Table.load(REAL_TABLE)
    assert round(table.lookup(OPTIMUM).accuracies["cifar10"], 2) == 94.36
    assert round(table.lookup(ALL_SKIP).accuracies["cifar10"], 2) == 54.30
    assert round(table.lookup(ALL_SKIP).accuracies["cifar100"], 2) == 15.61
    assert len(table.rows) == 15625


def test_table_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("index,arch,acc\n0,x,1\n")
    with pytest.raises(DartsNasError, match="missing column"):
        NB201Table.load(bad)
    short = tmp_path / "short.csv"
    short.write_text("index,arch_str,cifar10_test_acc,cifar100_test_acc,imagenet16_120_test_acc\n"
                     f"0,{OPTIMUM},94.0,70.0,40.0\n")
    with pytest.raises(DartsNasError, match="not in the table"):
        NB201Table.load(short).lookup(ALL_SKIP)
    with pytest.raises(DartsNasError, match="cannot read"):
        NB201Table.load(tmp_path / "missing.csv")


def test_lookup_command(full_table, capsys):
    assert main(["nb201", "lookup", OPTIMUM, "--table", str(full_table), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cifar10_test_acc"] == fake_accuracy(NB201Arch.from_text(OPTIMUM).ops)[0]
    assert main(["nb201", "lookup", "nonsense", "--table", str(full_table)]) == 2
    assert "neither an architecture string" in capsys.readouterr().err


# -- the split file ---------------------------------------------------------------------------------------------
def test_split_file_in_the_benchmark_format(tmp_path):
    path = tmp_path / "split.txt"
    path.write_text(json.dumps({"train": ["int", ["0", "3", "4", "9"]], "valid": ["int", ["1", "2", "7"]]}))
    train, valid = read_split_file(path, 8)
    assert train.tolist() == [0, 3, 4] and valid.tolist() == [1, 2, 7]
    path.write_text(json.dumps({"train": [0, 1], "valid": [1, 2]}))
    with pytest.raises(DartsNasError, match="overlap"):
        read_split_file(path, 8)
    path.write_text("{not json")
    with pytest.raises(DartsNasError, match="not a JSON split file"):
        read_split_file(path, 8)
