"""Candidate operations of the DARTS CNN space (DARTS, arXiv:1806.09055, section 2.1).

One implementation serves both the search supernet and the evaluation networks; they differ only in their
BatchNorm: search uses ``affine=False`` and batch statistics (the architecture keeps changing, and a network
without buffers is a pure function of its parameters, which the second-order math and CUDA graphs rely on),
evaluation nets use ``affine=True`` with running statistics. All convolutions are bias-free.

Ops that begin with a ReLU expose ``body(relu_x)`` so a mixed op can compute the ReLU once per edge and feed
it to all of them: the same function, fewer kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch_norm(channels: int, affine: bool, track_running_stats: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=track_running_stats)


class ReLUOp(nn.Module):
    """An op whose first layer is a ReLU; ``forward(x) == body(relu(x))``."""

    starts_with_relu = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.relu(x))

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ReLUConvBN(ReLUOp):
    """ReLU, k x k conv, BN: the cell's input preprocessing."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True, track_running_stats=True):
        super().__init__()
        self.conv = nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = batch_norm(C_out, affine, track_running_stats)

    def body(self, x):
        return self.bn(self.conv(x))


class DilConv(ReLUOp):
    """ReLU, depthwise k x k conv (dilation d), pointwise 1x1 conv, BN."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True, track_running_stats=True):
        super().__init__()
        self.depthwise = nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                                   groups=C_in, bias=False)
        self.pointwise = nn.Conv2d(C_in, C_out, 1, bias=False)
        self.bn = batch_norm(C_out, affine, track_running_stats)

    def body(self, x):
        return self.bn(self.pointwise(self.depthwise(x)))


class SepConv(ReLUOp):
    """Two stacked DilConv blocks without dilation; only the first is strided (DARTS' separable conv)."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True, track_running_stats=True):
        super().__init__()
        self.first = DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine, track_running_stats)
        self.second = DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine, track_running_stats)

    def body(self, x):
        return self.second(self.first.body(x))


class Conv7x1_1x7(ReLUOp):
    """ReLU, 1x7 conv, 7x1 conv, BN (AmoebaNet)."""

    def __init__(self, C_in, C_out, stride, affine=True, track_running_stats=True):
        super().__init__()
        self.conv_1x7 = nn.Conv2d(C_in, C_in, (1, 7), stride=(1, stride), padding=(0, 3), bias=False)
        self.conv_7x1 = nn.Conv2d(C_in, C_out, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False)
        self.bn = batch_norm(C_out, affine, track_running_stats)

    def body(self, x):
        return self.bn(self.conv_7x1(self.conv_1x7(x)))


class FactorizedReduce(ReLUOp):
    """Halve the resolution without losing pixels: two 1x1 stride-2 convs, the second on x shifted by one."""

    def __init__(self, C_in, C_out, affine=True, track_running_stats=True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = batch_norm(C_out, affine, track_running_stats)

    def body(self, x):
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Identity(nn.Module):
    starts_with_relu = False

    def forward(self, x):
        return x


class Zero(nn.Module):
    """The `none` op: zeros of the (strided) output shape."""

    starts_with_relu = False

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Pool(nn.Module):
    """3x3 max or average pooling (padding 1, padding not counted in the average), with BN in search only."""

    starts_with_relu = False

    def __init__(self, kind: str, C: int, stride: int, search_bn: bool):
        super().__init__()
        if kind == "max":
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)
        else:
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        self.bn = batch_norm(C, affine=False, track_running_stats=False) if search_bn else None

    def forward(self, x):
        x = self.pool(x)
        return self.bn(x) if self.bn is not None else x


def is_channels_last(x: torch.Tensor) -> bool:
    """A 4-d tensor stored NHWC (and not also NCHW, as 1x1 maps are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def channel_shuffle(x: torch.Tensor, groups: int, dim: int = 1) -> torch.Tensor:
    """Interleave `groups` equal blocks of channels along `dim` (PC-DARTS mixes the processed and bypassed
    channels of an edge this way): channel g * (C / groups) + c moves to c * groups + g. Keeps NHWC storage."""
    out = x.unflatten(dim, (groups, x.shape[dim] // groups)).transpose(dim, dim + 1).flatten(dim, dim + 1)
    return out.contiguous(memory_format=torch.channels_last) if is_channels_last(x) else out


def split_partial(x: torch.Tensor, K: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PC-DARTS' partial channel connection: the first C/K channels of x (what the edge's ops process) and the
    rest, which bypass them, 2x2 max-pooled on a stride-2 edge (ceil mode, so odd sides match the ops' output)."""
    C = x.shape[1]
    part, bypass = x[:, : C // K], x[:, C // K:]
    return part, (bypass if stride == 1 else F.max_pool2d(bypass, 2, 2, ceil_mode=True))


def join_partial(processed: torch.Tensor, bypass: torch.Tensor, K: int, dim: int = 1) -> torch.Tensor:
    """The edge's output: processed and bypassed channels concatenated along `dim`, then channel-shuffled."""
    return channel_shuffle(torch.cat([processed, bypass], dim), K, dim)


def darts_op(name: str, C: int, stride: int, search: bool) -> nn.Module:
    """Build op `name` on C channels. ``search=True`` gives the supernet's version (affine-free BN with batch
    statistics, BN after pooling); ``search=False`` the evaluation nets' (affine BN with running statistics)."""
    affine = not search
    track = not search
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return Pool("max", C, stride, search_bn=search)
    if name == "avg_pool_3x3":
        return Pool("avg", C, stride, search_bn=search)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine, track)
    if name in ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"):
        k = int(name[-1])
        return SepConv(C, C, k, stride, k // 2, affine, track)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(C, C, k, stride, k - 1, 2, affine, track)  # padding 2 (k=3) / 4 (k=5) keeps the size
    if name == "conv_7x1_1x7":
        return Conv7x1_1x7(C, C, stride, affine, track)
    raise KeyError(f"unknown op {name!r}")
