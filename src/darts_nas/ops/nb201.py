"""The candidate ops of the NAS-Bench-201 cell (Dong and Yang, ICLR 2020, arXiv:2001.00326), search version:
built from DARTS' op modules, which they share with the DARTS space (:mod:`darts_nas.ops.darts`)."""

from __future__ import annotations

from torch import nn

from ..errors import DartsNasError
from .darts import Identity, Pool, ReLUConvBN


def nb201_op(name: str, C: int, stride: int) -> nn.Module:
    """The search version of a NAS-Bench-201 op: nor_conv is ReLU-conv-BN (affine-free, batch statistics), the
    pool has no BN (unlike the DARTS space)."""
    if stride != 1:
        raise DartsNasError("NAS-Bench-201 cell ops have stride 1")
    if name == "skip_connect":
        return Identity()
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        k = int(name[-1])
        return ReLUConvBN(C, C, k, 1, k // 2, affine=False, track_running_stats=False)
    if name == "avg_pool_3x3":
        return Pool("avg", C, 1, search_bn=False)
    raise DartsNasError(f"unknown NAS-Bench-201 op {name!r}")
