"""The ops of sharpDARTS' HyperCuboid (Hundt, Jain, Hager, arXiv:1903.09900): every op goes from C_in to C_out
channels, so the grid search can mix widths; the supernet and the path network trained from scratch build theirs
here."""

from __future__ import annotations

from torch import nn

from .sharp import ResizablePool, SharpSepConv


def hyper_op(name: str, C_in: int, C_out: int, stride: int, search: bool, affine: bool | None = None) -> nn.Module:
    """A HyperCuboid op: ResizablePool (3x3 max pool, then 1x1 conv + BN when the width changes) or SharpSepConv.
    `affine` (default: not `search`) says whether its BNs have affine parameters; in search they use batch
    statistics either way."""
    affine = not search if affine is None else affine
    if name == "ResizablePool":
        return ResizablePool(C_in, C_out, stride, "max", search, pool_bn=False, affine=affine)
    return SharpSepConv(C_in, C_out, 3, stride, affine=affine, track_running_stats=not search)
