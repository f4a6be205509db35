"""The MobileNetV2 / ProxylessNAS ops: the inverted residual body (MBConv) that the ProxylessNAS supernet mixes and
its evaluation network stacks, and ``mobile_op`` for the ``mb_k<k>_e<e>`` names of
:mod:`darts_nas.genotypes.mobile`."""

from __future__ import annotations

from torch import nn


class MBConv(nn.Module):
    """MobileNetV2's inverted residual body (Sandler et al., arXiv:1801.04381), as the ProxylessNAS space uses it
    (arXiv:1812.00332): 1x1 expansion to e * C_in (absent for e = 1), BN, ReLU6; depthwise k x k (stride s), BN,
    ReLU6; 1x1 projection to C_out, BN. No residual here: the network adds the shortcut. BN eps 1e-3; ``search``
    gives affine-free BN with batch statistics (the supernet), else affine BN with running statistics."""

    starts_with_relu = False

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, expansion: int, search: bool):
        super().__init__()
        mid = C_in * expansion
        self.kernel, self.expansion, self.stride = kernel, expansion, stride

        def bn(c):
            return nn.BatchNorm2d(c, eps=1e-3, affine=not search, track_running_stats=not search)

        layers = []
        if expansion != 1:
            layers += [nn.Conv2d(C_in, mid, 1, bias=False), bn(mid), nn.ReLU6(inplace=False)]
        layers += [nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), bn(mid),
                   nn.ReLU6(inplace=False), nn.Conv2d(mid, C_out, 1, bias=False), bn(C_out)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def mobile_op(name: str, C_in: int, C_out: int, stride: int, search: bool) -> nn.Module:
    """The MBConv of an ``mb_k<k>_e<e>`` name (kernel k, expansion e) from C_in to C_out channels at `stride`;
    ``search`` as for :class:`MBConv`. ``zero`` has no module: the layer that picks it is skipped."""
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != "mb" or not parts[1].startswith("k") or not parts[2].startswith("e"):
        raise KeyError(f"unknown MobileNetV2 op {name!r}")
    return MBConv(C_in, C_out, int(parts[1][1:]), stride, int(parts[2][1:]), search)
