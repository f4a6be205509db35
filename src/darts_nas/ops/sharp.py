"""sharpDARTS' operations (Hundt, Jain, Hager, arXiv:1903.09900), written from their description and the facts of
the authors' code (ahundt/sharpDARTS operations.py @6f593d4; nothing copied).

- :class:`SharpSepConv` (k, stride s, dilation d, mid channels m): ReLU, depthwise k x k (stride s, dilation d),
  1x1 to m, BN, ReLU, depthwise k x k (stride 1, undilated), 1x1 to C_out, BN. All convolutions bias-free.
  The op names of the sharpDARTS spaces are SharpSepConvs: ``sep_conv_kxk`` (m = C_out), ``dil_conv_kxk``
  (dilation 2: it is a SharpSepConv, not DARTS' single DilConv), ``flood_conv_kxk`` (m = 4 C_out),
  ``dil_flood_conv_3x3``, ``choke_conv_3x3`` and ``dil_choke_conv_3x3`` (m = `choke`, by default 32 as in the
  authors' search and CIFAR scripts; their ImageNet scripts use 96).
- :class:`ResizablePool`: 3x3 max or average pooling (the average counts the padding, PyTorch's default, as in
  the authors' code), followed by a 1x1 conv and BN (eps 1e-3) when the channel count changes.
- ``skip_connect`` is the identity, or DARTS' FactorizedReduce on a stride-2 edge; ``none`` is zero.

As for DARTS' ops (:mod:`darts_nas.ops.darts`), ``search=True`` gives the supernet's version (BN without affine
parameters, batch statistics; the search adds a BN after each pool, as the authors' search does), ``search=False``
the evaluation network's.
"""

from __future__ import annotations

from torch import nn

from .darts import FactorizedReduce, Identity, ReLUOp, Zero, batch_norm

# The sharpDARTS space (9 ops) and the "sharper" space (12 ops), in the authors' column order.
SHARP_PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3", "flood_conv_3x3", "dil_flood_conv_3x3",
    "choke_conv_3x3", "dil_choke_conv_3x3")
SHARPER_PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
    "dil_conv_3x3", "dil_conv_5x5", "flood_conv_3x3", "flood_conv_5x5", "dil_flood_conv_3x3")
SHARP_OPS = frozenset(SHARP_PRIMITIVES) | frozenset(SHARPER_PRIMITIVES)
SHARP_PARAMETER_FREE = frozenset({"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})

CHOKE_CHANNELS = 32  # the choke ops' middle width in the authors' search and CIFAR training scripts

# name -> (kernel, dilation, mid-channel rule): "out" (m = C_out), "flood" (4 C_out) or "choke" (mid_channels)
_CONVS = {
    "sep_conv_3x3": (3, 1, "out"), "sep_conv_5x5": (5, 1, "out"), "sep_conv_7x7": (7, 1, "out"),
    "dil_conv_3x3": (3, 2, "out"), "dil_conv_5x5": (5, 2, "out"),
    "flood_conv_3x3": (3, 1, "flood"), "flood_conv_5x5": (5, 1, "flood"), "dil_flood_conv_3x3": (3, 2, "flood"),
    "choke_conv_3x3": (3, 1, "choke"), "dil_choke_conv_3x3": (3, 2, "choke"),
}


class SharpSepConv(ReLUOp):
    """ReLU, depthwise k x k (stride, dilation), 1x1 to C_mid, BN, ReLU, depthwise k x k, 1x1 to C_out, BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 C_mid: int | None = None, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        C_mid = C_out if C_mid is None else C_mid
        self.kernel_size, self.stride, self.dilation, self.C_mid = kernel_size, stride, dilation, C_mid
        self.depthwise1 = nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2,
                                    dilation=dilation, groups=C_in, bias=False)
        self.pointwise1 = nn.Conv2d(C_in, C_mid, 1, bias=False)
        self.bn1 = batch_norm(C_mid, affine, track_running_stats)
        self.relu = nn.ReLU(inplace=False)
        self.depthwise2 = nn.Conv2d(C_mid, C_mid, kernel_size, padding=(kernel_size - 1) // 2, groups=C_mid,
                                    bias=False)
        self.pointwise2 = nn.Conv2d(C_mid, C_out, 1, bias=False)
        self.bn2 = batch_norm(C_out, affine, track_running_stats)

    def body(self, x):
        x = self.relu(self.bn1(self.pointwise1(self.depthwise1(x))))
        return self.bn2(self.pointwise2(self.depthwise2(x)))


class ResizablePool(nn.Module):
    """3x3 pooling (stride s, padding 1), then 1x1 conv + BN (eps 1e-3) when C_in != C_out; in search, a BN
    without affine parameters after it (the supernet's pools). `affine` (default: not `search`) lets the
    HyperCuboid's supernet keep the resizing BN's affine parameters, as its authors' does."""

    starts_with_relu = False

    def __init__(self, C_in: int, C_out: int, stride: int = 1, kind: str = "max", search: bool = False,
                 pool_bn: bool | None = None, affine: bool | None = None):
        super().__init__()
        affine = not search if affine is None else affine
        self.pool = (nn.MaxPool2d(3, stride=stride, padding=1) if kind == "max"
                     else nn.AvgPool2d(3, stride=stride, padding=1))
        self.resize = None
        if C_in != C_out:
            self.resize = nn.Sequential(nn.Conv2d(C_in, C_out, 1, bias=False),
                                        nn.BatchNorm2d(C_out, eps=1e-3, affine=affine,
                                                       track_running_stats=not search))
        # The cell search's pools end in a BN (pool_bn defaults to `search`); the HyperCuboid's do not.
        self.search_bn = batch_norm(C_out, False, False) if (search if pool_bn is None else pool_bn) else None

    def forward(self, x):
        x = self.pool(x)
        if self.resize is not None:
            x = self.resize(x)
        return self.search_bn(x) if self.search_bn is not None else x


def mid_channels(name: str, C: int, choke: int = CHOKE_CHANNELS) -> int:
    """The middle width of a SharpSepConv op on C channels."""
    rule = _CONVS[name][2]
    return C if rule == "out" else 4 * C if rule == "flood" else choke


def sharp_op(name: str, C: int, stride: int, search: bool, choke: int = CHOKE_CHANNELS) -> nn.Module:
    """Op `name` of the sharpDARTS spaces on C channels (see the module docstring)."""
    affine = track = not search
    if name == "none":
        return Zero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return ResizablePool(C, C, stride, name[:3], search)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine, track)
    if name in _CONVS:
        k, d, _ = _CONVS[name]
        return SharpSepConv(C, C, k, stride, d, mid_channels(name, C, choke), affine, track)
    raise KeyError(f"unknown sharpDARTS op {name!r}")


def sharp_search_op(name: str, C: int, stride: int) -> nn.Module:
    """The supernet's version (the `make` of :class:`darts_nas.spaces.mixed.MixedOp`)."""
    return sharp_op(name, C, stride, True)
