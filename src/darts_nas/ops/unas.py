"""The candidate ops of UNAS' DARTS cell space (Vahdat, Mallya, Liu, Kautz, CVPR 2020, arXiv:1912.07651): DARTS'
ops in their search version, with pools that have no BatchNorm (unlike DARTS' supernet), as in UNAS."""

from __future__ import annotations

from torch import nn

from .darts import Pool, darts_op


def unas_op(name: str, C: int, stride: int) -> nn.Module:
    """The search version of an op: DARTS' (affine-free BN with batch statistics), pools without BN."""
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], C, stride, search_bn=False)
    return darts_op(name, C, stride, True)
