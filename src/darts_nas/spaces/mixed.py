"""The mixed op of an edge, shared by every space whose edges choose among candidate modules (DARTS CNN,
NAS-Bench-201): sum_k w_k op_k(x) (DARTS eq. 2, arXiv:1806.09055), with GDAS' one-op evaluation and PC-DARTS'
partial channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..genotypes import PRIMITIVES
from ..ops import Zero, darts_op, join_partial, split_partial


class MixedOp(nn.Module):
    """sum_k w_k op_k(x) over the candidate ops of one edge (DARTS eq. 2).

    `none` contributes w_none * 0 and is skipped: the value and every gradient are unchanged. The ReLU that
    opens the conv ops is computed once per edge.

    ``partial=K > 1`` is PC-DARTS' partial channel connection: only the first C/K channels go through the ops,
    the rest bypass them (2x2 max-pooled on a reduction edge), and the two parts are channel-shuffled.

    ``selected=k`` (GDAS' hard relaxation) evaluates op k alone, weighted by its (one-hot, straight-through)
    weight; ``selected=(k, l, ...)`` evaluates those ops only (UNAS' cell, where two slots may pick ops on one
    edge). `make(name, C, stride)` builds each candidate op, so other spaces (NAS-Bench-201) reuse this class.
    """

    def __init__(self, C: int, stride: int, primitives=PRIMITIVES, partial: int = 1, make=None):
        super().__init__()
        self.stride = stride
        self.partial = partial
        self.ops = nn.ModuleList()
        self.columns: list[int] = []  # column of the op weights each op reads
        for k, name in enumerate(primitives):
            if name == "none":
                continue
            self.ops.append(make(name, C // partial, stride) if make else darts_op(name, C // partial, stride, True))
            self.columns.append(k)
        self.shared_relu = any(op.starts_with_relu for op in self.ops)
        self.zero = Zero(stride)  # what a selected `none` outputs (GDAS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, selected: int | None = None) -> torch.Tensor:
        if self.partial == 1:
            return self.mixed(x, weights, selected)
        part, bypass = split_partial(x, self.partial, self.stride)
        return join_partial(self.mixed(part, weights, selected), bypass, self.partial)

    def op_for_column(self, k: int) -> nn.Module | None:
        """The op that reads column k of the op weights (None for `none`)."""
        return self.ops[self.columns.index(k)] if k in self.columns else None

    def mixed(self, x: torch.Tensor, weights: torch.Tensor, selected=None) -> torch.Tensor:
        if isinstance(selected, tuple):
            out = None
            for k in selected:
                op = self.op_for_column(k)
                y = weights[k] * (self.zero if op is None else op)(x)
                out = y if out is None else out + y
            return out
        if selected is not None:
            op = self.op_for_column(selected)
            return weights[selected] * (self.zero if op is None else op)(x)  # `none`: zeros, still weighted for the gradient
        relu_x = F.relu(x) if self.shared_relu else None
        w = weights.unbind()
        out = None
        for k, op in zip(self.columns, self.ops):
            y = op.body(relu_x) if op.starts_with_relu else op(x)
            term = w[k] * y
            out = term if out is None else out + term
        return out
