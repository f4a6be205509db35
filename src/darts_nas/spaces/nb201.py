"""The NAS-Bench-201 search space (Dong and Yang, ICLR 2020, arXiv:2001.00326).

A cell has 4 nodes: node 0 is the cell input, node j the sum over i < j of op_{i->j}(node i), and node 3 the
output: 6 edges, each one of ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3`` (nor_conv =
ReLU, conv, BN), so 5^6 = 15,625 cells. The network: a 3x3 conv stem (C=16) and BN, N=5 cells, a residual
reduction block (basic ResNet block, stride 2) to 2C, N cells, another to 4C, N cells, BN and ReLU, global
pooling, linear. Every cell of the network is the same cell, so one alpha matrix ``[6, 5]`` describes it.

The architecture string is the benchmark's own: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1 | node 2 |
node 3; ``~i`` the input node). The derived cell is the strongest op of each edge, ``none`` included.
"""

from __future__ import annotations


from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import ReLUConvBN, nb201_op
from .base import SearchData, SearchModel, parameter_count_millions
from ..settings import SettingsGroup, setting
from .mixed import MixedOp

from ..genotypes.nb201 import NB201_EDGES, NB201_PRIMITIVES, NB201Arch


class NB201SearchCell(nn.Module):
    def __init__(self, C: int, primitives=NB201_PRIMITIVES):
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(C, 1, primitives, make=nb201_op) for _ in NB201_EDGES)

    def forward(self, x, weights, selected=None):
        nodes = [x]
        for node in (1, 2, 3):
            total = None
            for e, (j, i) in enumerate(NB201_EDGES):
                if j == node:
                    y = self.edges[e](nodes[i], weights[e], None if selected is None else selected[e])
                    total = y if total is None else total + y
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The basic ResNet block between stages: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a shortcut of 2x2
    average pooling and a 1x1 conv."""

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, 1, affine=True, track_running_stats=False)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine=True, track_running_stats=False)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(C_in, C_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, C=16, cells_per_stage=5, num_classes=10, in_channels=3, primitives=NB201_PRIMITIVES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C, track_running_stats=False))
        layers, C_curr = [], C
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(C_curr, 2 * C_curr))
                C_curr *= 2
            layers += [NB201SearchCell(C_curr, primitives) for _ in range(cells_per_stage)]
        self.layers = nn.ModuleList(layers)
        self.last = nn.BatchNorm2d(C_curr, track_running_stats=False)
        self.classifier = nn.Linear(C_curr, num_classes)

    def cells(self) -> list[NB201SearchCell]:
        return [m for m in self.layers if isinstance(m, NB201SearchCell)]

    def forward(self, x, weights, selected=None):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, weights, selected) if isinstance(layer, NB201SearchCell) else layer(x)
        x = F.relu(self.last(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@dataclass
class NB201Settings(SettingsGroup):
    """The NAS-Bench-201 space's size and its benchmark table."""

    POSITIVE = ("cells_per_stage",)

    cells_per_stage: int = setting(5, "NAS-Bench-201: cells per stage (the network has 3 stages)", space_setting=True)
    nb201_table: str = setting("", "NAS-Bench-201 results CSV: log the benchmark accuracy of the cell every epoch",
                               space_setting=True)


class NB201SearchModel(SearchModel):
    """The NAS-Bench-201 supernet and its one alpha matrix ``cell`` [6, 5], init 1e-3 N(0, 1)."""

    space = "nb201"
    genotype_type = NB201Arch
    settings = frozenset({"cells_per_stage", "channels_last", "cuda_graphs", "split_file", "resource_weight",
                          "stop_param_free", "nb201_table"})
    settings_groups = (NB201Settings,)

    @classmethod
    def input_side_multiple(cls, config) -> int:
        return 4  # two ResidualReductions, whose stride-2 conv and 2x2 pooling agree only on even maps

    @classmethod
    def from_config(cls, config, data: SearchData) -> "NB201SearchModel":
        return cls(C=config.channels, cells_per_stage=config.cells_per_stage, num_classes=data.num_classes,
                   in_channels=data.in_channels, relaxation=config.relaxation, max_w=config.max_w)

    def alpha_table(self) -> str:
        return "\n".join(f"edge {e}: " + "  ".join(f"{p} {w:.3f}" for p, w in zip(self.primitives, row))
                         for e, row in enumerate(self.derivation_weights()["cell"].tolist()))

    def __init__(self, C=16, cells_per_stage=5, num_classes=10, in_channels=3, relaxation="softmax", max_w=False):
        super().__init__()
        self.hparams = dict(C=C, cells_per_stage=cells_per_stage, num_classes=num_classes, in_channels=in_channels,
                            relaxation=relaxation, max_w=max_w)
        self.primitives = NB201_PRIMITIVES
        self.net = NB201Network(C, cells_per_stage, num_classes, in_channels)
        self.alphas = nn.ParameterDict({"cell": nn.Parameter(1e-3 * torch.randn(len(NB201_EDGES),
                                                                                len(NB201_PRIMITIVES)))})
        self.init_search(relaxation, max_w)

    def edge_names(self) -> dict[str, list[str]]:
        return {"cell": [f"{i}->{j}" for j, i in NB201_EDGES]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.op_weights()
        selected = self.selections(w)
        return self.net(self.prepare_input(x), w["cell"], None if selected is None else selected["cell"])

    def op_costs(self) -> dict[str, torch.Tensor]:
        cells = self.net.cells()
        cost = torch.tensor([[sum(parameter_count_millions(c.edges[e].op_for_column(k)) for c in cells)
                              for k in range(len(self.primitives))] for e in range(len(NB201_EDGES))])
        return {"cell": cost.to(self.alphas["cell"].device)}

    def genotype(self) -> NB201Arch:
        """The strongest op of each edge (ties: the earlier op), `none` allowed, as NAS-Bench-201 derives cells."""
        rows = self.derivation_weights()["cell"].to(torch.float64).cpu().tolist()
        return NB201Arch(tuple(self.primitives[max(range(len(r)), key=lambda k: (r[k], -k))] for r in rows))

    @staticmethod
    def parameter_free_ops(arch: NB201Arch) -> int:
        return arch.parameter_free_ops()
