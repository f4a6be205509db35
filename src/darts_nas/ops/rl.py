"""The ops of the RL-DARTS encoder cells (Miao et al., RL-DARTS, arXiv:2106.02229), at stride 1: the authors' set
(conv 3x3 with bias, relu, tanh, skip, zero) and DARTS' (its supernet ops: affine-free BN with batch statistics,
in both the supernet and the fixed cell, so that a derived cell computes what its supernet edge computed)."""

from __future__ import annotations

import torch
from torch import nn

from .darts import Identity, Zero, darts_op


class _Act(nn.Module):
    """A parameter-free elementwise op of the authors' set."""

    starts_with_relu = False

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Conv3x3(nn.Conv2d):
    """The authors' Conv3x3: a 3x3 conv with bias, same padding, no nonlinearity."""

    starts_with_relu = False

    def __init__(self, C: int):
        super().__init__(C, C, 3, padding=1)


def rl_op(name: str, C: int) -> nn.Module:
    """One op of either op set at stride 1."""
    if name == "conv_3x3":
        return _Conv3x3(C)
    if name == "relu":
        return _Act(torch.relu)
    if name == "tanh":
        return _Act(torch.tanh)
    if name == "skip_connect":
        return Identity()
    if name == "none":
        return Zero(1)
    return darts_op(name, C, 1, search=True)
