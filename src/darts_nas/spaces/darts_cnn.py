"""The DARTS CNN search space (DARTS paper section 2.1-2.2; darts-facts section 1).

The supernet is a pure function of (weights, op weights, x): the op weights are forward arguments, and the
alphas live beside the network in :class:`DartsCNNSearchModel`, never inside it. Search-time BN uses batch
statistics and has no buffers, so ``torch.func.functional_call`` can evaluate the network at any weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..genotype import PRIMITIVES, Genotype, derive_genotype
from ..ops import FactorizedReduce, ReLUConvBN, make_op
from ..relaxation import get_relaxation


def num_edges(steps: int) -> int:
    """Edges of a cell with `steps` intermediate nodes: node i has i + 2 inputs (14 for 4 nodes)."""
    return sum(2 + i for i in range(steps))


class MixedOp(nn.Module):
    """sum_k w_k op_k(x) over the candidate ops of one edge (DARTS eq. 2).

    `none` contributes w_none * 0 and is skipped: the value and every gradient are unchanged. The ReLU that
    opens the conv ops is computed once per edge.
    """

    def __init__(self, C: int, stride: int, primitives=PRIMITIVES):
        super().__init__()
        self.ops = nn.ModuleList()
        self.columns: list[int] = []  # column of the op weights each op reads
        for k, name in enumerate(primitives):
            if name == "none":
                continue
            self.ops.append(make_op(name, C, stride, search=True))
            self.columns.append(k)
        self.shared_relu = any(op.starts_with_relu for op in self.ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        relu_x = F.relu(x) if self.shared_relu else None
        w = weights.unbind()
        out = None
        for k, op in zip(self.columns, self.ops):
            y = op.body(relu_x) if op.starts_with_relu else op(x)
            term = w[k] * y
            out = term if out is None else out + term
        return out


class SearchCell(nn.Module):
    """A cell of the supernet: two preprocessed inputs, `steps` nodes, each the sum of mixed ops over all
    earlier states; output the channel concat of the last `multiplier` nodes."""

    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev, primitives=PRIMITIVES):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False, track_running_stats=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False, track_running_stats=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False, track_running_stats=False)
        self.edges = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(C, stride, primitives))

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = None
            for j, h in enumerate(states):
                y = self.edges[offset + j](h, weights[offset + j])
                node = y if node is None else node + y
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.multiplier:], dim=1)


class SearchNetwork(nn.Module):
    """Stem, `layers` cells (reductions at 1/3 and 2/3 depth, channels doubled there), pooling, classifier."""

    def __init__(self, C=16, num_classes=10, layers=8, steps=4, multiplier=4, stem_multiplier=3, in_channels=3,
                 primitives=PRIMITIVES):
        super().__init__()
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_curr, track_running_stats=False),
        )
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev,
                                         primitives))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x, weights_normal, weights_reduce):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights_reduce if cell.reduction else weights_normal)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(s1, 1), 1))


class DartsCNNSearchModel(nn.Module):
    """Supernet weights plus the two alpha matrices (normal, reduce), each [edges, ops], init 1e-3 N(0, 1)."""

    space = "darts-cnn"

    def __init__(self, C=16, num_classes=10, layers=8, steps=4, multiplier=None, stem_multiplier=3, in_channels=3,
                 primitives=PRIMITIVES, relaxation="softmax"):
        super().__init__()
        multiplier = steps if multiplier is None else multiplier  # concat all intermediate nodes by default
        self.hparams = dict(C=C, num_classes=num_classes, layers=layers, steps=steps, multiplier=multiplier,
                            stem_multiplier=stem_multiplier, in_channels=in_channels, primitives=list(primitives),
                            relaxation=relaxation)
        self.primitives = tuple(primitives)
        self.steps = steps
        self.relax = get_relaxation(relaxation)
        self.net = SearchNetwork(C, num_classes, layers, steps, multiplier, stem_multiplier, in_channels, primitives)
        shape = (num_edges(steps), len(primitives))
        self.alphas = nn.ParameterDict({
            "normal": nn.Parameter(1e-3 * torch.randn(shape)),
            "reduce": nn.Parameter(1e-3 * torch.randn(shape)),
        })
        self.channels_last = False

    def use_channels_last(self, enabled: bool = True) -> "DartsCNNSearchModel":
        """Run convolutions and pooling in NHWC layout: the same function, and on CPU the depthwise/dilated convs
        and pools are 2-5x faster (docs/benchmarks.md). Inputs are converted in forward."""
        self.channels_last = enabled
        self.net.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    # -- the two parameter sets -------------------------------------------------------------------------------
    def named_weight_parameters(self) -> dict[str, nn.Parameter]:
        return {f"net.{name}": p for name, p in self.net.named_parameters()}

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas["normal"], self.alphas["reduce"]]

    # -- the function -----------------------------------------------------------------------------------------
    def op_weights(self) -> dict[str, torch.Tensor]:
        return {name: self.relax(alpha) for name, alpha in self.alphas.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        w = self.op_weights()
        return self.net(x, w["normal"], w["reduce"])

    def loss(self, batch, weights: dict[str, torch.Tensor] | None = None):
        x, y = batch
        logits = self(x) if weights is None else functional_call(self, weights, (x,), strict=False)
        return F.cross_entropy(logits, y), logits

    # -- the discrete architecture ----------------------------------------------------------------------------
    @torch.no_grad()
    def derivation_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) over all ops, including `none` (darts-facts section 1), whatever the search-time
        relaxation: what the derivation ranks."""
        return {name: torch.softmax(alpha, -1) for name, alpha in self.alphas.items()}

    def genotype(self) -> Genotype:
        """The derived cell (DARTS rule, see :func:`darts_nas.genotype.derive_cell`)."""
        w = self.derivation_weights()
        return derive_genotype(w["normal"], w["reduce"], self.primitives, self.steps)
