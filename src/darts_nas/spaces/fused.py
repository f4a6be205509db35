"""A search cell computed state by state, every edge leaving a state and all their candidate ops batched into a
few kernels (docs/benchmarks.md, speed settings). It reads the very parameters of the per-op modules, so it is the same function
(``SearchCell.forward`` with ``fused=False`` is the reference the tests compare it with); only the kernels change.

For a state h with E out-edges (all of one stride), where the per-op code launches a few kernels per op and edge:

* pools and their parameter-free BN give the same result on every edge: computed once, weighted per edge;
* identity is shared too; a strided skip (FactorizedReduce) of all edges is two convs with E * C/2 outputs;
* the ReLU -> depthwise -> pointwise -> BN blocks (the first half of every separable conv, every dilated conv)
  of all edges are one depthwise conv per dilation with a channel multiplier (each input channel feeds one
  filter per block; smaller kernels are zero-padded to the largest, which changes no output), one grouped 1x1
  conv and one BN; the separable convs' second halves are one depthwise conv, one grouped 1x1 conv, one BN.
  Search BN is per channel over the batch with no parameters, so one BN over concatenated channels is the
  same as one per op;
* the weighted sums of all edges are a few broadcast multiplies and sums.

A cell of the DARTS space launches about 4x fewer kernels this way; the zero-padded 3x3 kernels cost extra
multiply-adds in the depthwise convs, which are a small part of the work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DartsNasError
from ..ops import DilConv, FactorizedReduce, Identity, Pool, SepConv, is_channels_last, join_partial, split_partial

FUSABLE = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
           "dil_conv_3x3", "dil_conv_5x5")


def check_fusable(primitives) -> None:
    unknown = [p for p in primitives if p not in FUSABLE]
    if unknown:
        raise DartsNasError(f"--fuse-ops covers the ops {', '.join(FUSABLE)}; not {', '.join(unknown)}")


def fused_nodes(cell, states: list[torch.Tensor], weights: torch.Tensor, edge_w: torch.Tensor | None):
    """The `cell.steps` node states of `cell`, given its two preprocessed inputs."""
    states = list(states)
    rows = weights.unbind(0)
    edge_rows = edge_w.unbind(0) if edge_w is not None else None
    nodes: list[torch.Tensor | None] = [None] * cell.steps
    for j, (targets, idx) in enumerate(cell.out_edges):
        out = edges_from_state(cell, states[j], idx, torch.stack([rows[e] for e in idx]))  # [N, E, C, H, W]
        if edge_rows is not None:
            out = out * torch.stack([edge_rows[e] for e in idx]).view(1, -1, 1, 1, 1)
        for t, i in enumerate(targets):
            nodes[i] = out[:, t] if nodes[i] is None else nodes[i] + out[:, t]
        if j >= 1:  # node j - 1 has all its inputs now
            states.append(nodes[j - 1])
    return states[2:]


def edges_from_state(cell, h: torch.Tensor, idx: list[int], w: torch.Tensor) -> torch.Tensor:
    """Outputs [N, E, C, H', W'] of the edges `idx` of `cell`, which all read state `h`; `w` [E, ops] are their
    op weights."""
    first = cell.edges[idx[0]]
    if first.partial == 1:
        return mixed_batch([cell.edges[e] for e in idx], h, w)
    part, bypass = split_partial(h, first.partial, first.stride)
    y = mixed_batch([cell.edges[e] for e in idx], part, w)
    return join_partial(y, bypass.unsqueeze(1).expand(-1, len(idx), -1, -1, -1), first.partial, dim=2)


def mixed_batch(mixed_ops, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[e, k] op_k^e(x) for every mixed op e of `mixed_ops` (all on input x), as [N, E, C, H', W']."""
    E = len(mixed_ops)
    ops0, columns = mixed_ops[0].ops, mixed_ops[0].columns
    relu_x = F.relu(x)
    nhwc = is_channels_last(x)
    terms = []

    def weighted(col: int, y: torch.Tensor) -> torch.Tensor:  # y [N, C, H, W] shared, or [N, E, C, H, W]
        wk = w[:, col].view(1, E, 1, 1, 1)
        return wk * (y.unsqueeze(1) if y.dim() == 4 else y)

    sep_pos, dil_pos = [], []
    for p, (col, op) in enumerate(zip(columns, ops0)):
        if isinstance(op, (Pool, Identity)):
            terms.append(weighted(col, op(x)))  # no parameters: the same on every edge
        elif isinstance(op, FactorizedReduce):
            terms.append(weighted(col, _factorized_reduce_batch([m.ops[p] for m in mixed_ops], relu_x)))
        elif isinstance(op, SepConv):
            sep_pos.append(p)
        elif isinstance(op, DilConv):
            dil_pos.append(p)
        else:  # pragma: no cover - check_fusable refuses other ops first
            raise DartsNasError(f"--fuse-ops cannot batch {type(op).__name__}")

    # Stage 1: the first block of every separable conv, then every dilated conv, all edges.
    sep_blocks = [mixed_ops[e].ops[p].first for p in sep_pos for e in range(E)]
    dil_blocks = [mixed_ops[e].ops[p] for p in dil_pos for e in range(E)]
    parts = [_depthwise_multi(relu_x, [b.depthwise for b in blocks]) for blocks in (sep_blocks, dil_blocks) if blocks]
    if parts:
        blocks = sep_blocks + dil_blocks
        z = _m_major(parts, nhwc)
        z = F.conv2d(z, torch.cat([b.pointwise.weight for b in blocks]), groups=len(blocks))
        z = _batch_norm(z, blocks[0].bn)
        S = len(sep_blocks) * x.shape[1]
        if sep_blocks:  # stage 2: the second block of every separable conv
            seconds = [mixed_ops[e].ops[p].second for p in sep_pos for e in range(E)]
            s = _depthwise_grouped(F.relu(z[:, :S]), [b.depthwise for b in seconds])
            s = F.conv2d(s, torch.cat([b.pointwise.weight for b in seconds]), groups=len(seconds))
            s = _batch_norm(s, seconds[0].bn)
            terms.append(_weighted_blocks(s, w, [columns[p] for p in sep_pos], E))
        if dil_blocks:
            terms.append(_weighted_blocks(z[:, S:], w, [columns[p] for p in dil_pos], E))
    if not terms:
        raise DartsNasError("a mixed op needs at least one candidate op besides `none`")
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def _pad_kernel(weight: torch.Tensor, k: int) -> torch.Tensor:
    p = (k - weight.shape[-1]) // 2
    return F.pad(weight, (p, p, p, p)) if p else weight


def _depthwise_multi(x: torch.Tensor, convs) -> torch.Tensor:
    """Depthwise convs that all read x (same stride and dilation), as one conv with a channel multiplier:
    [N, C, M, H', W'] with M = len(convs)."""
    c0 = convs[0]
    k = max(c.kernel_size[0] for c in convs)
    d = c0.dilation[0]
    weight = torch.stack([_pad_kernel(c.weight, k) for c in convs], dim=1).flatten(0, 1)  # [C * M, 1, k, k]
    y = F.conv2d(x, weight, stride=c0.stride, padding=d * (k - 1) // 2, dilation=d, groups=x.shape[1])
    return y.unflatten(1, (x.shape[1], len(convs)))


def _depthwise_grouped(x: torch.Tensor, convs) -> torch.Tensor:
    """Depthwise convs (stride 1, no dilation), conv m on channels [m C, (m + 1) C) of x, as one conv."""
    k = max(c.kernel_size[0] for c in convs)
    weight = torch.cat([_pad_kernel(c.weight, k) for c in convs])
    return F.conv2d(x, weight, padding=(k - 1) // 2, groups=x.shape[1])


def _m_major(parts, nhwc: bool) -> torch.Tensor:
    """[N, C, M_i, H, W] parts -> [N, (sum M_i) * C, H, W] with block m on channels [m C, (m + 1) C), in the
    memory layout of the input (one copy either way)."""
    if nhwc:
        y = torch.cat([p.permute(0, 3, 4, 2, 1) for p in parts], dim=3)  # [N, H, W, M, C], contiguous
        return y.permute(0, 3, 4, 1, 2).flatten(1, 2)
    return torch.cat([p.transpose(1, 2) for p in parts], dim=1).flatten(1, 2)


def _batch_norm(x: torch.Tensor, bn) -> torch.Tensor:
    """Search BN (no affine parameters, batch statistics) over all channels at once."""
    return F.batch_norm(x, None, None, training=True, eps=bn.eps)


def _factorized_reduce_batch(frs, relu_x: torch.Tensor) -> torch.Tensor:
    """FactorizedReduce of every edge on the same input: [N, E, C, H/2, W/2]."""
    E, half = len(frs), frs[0].conv_1.out_channels
    y1 = F.conv2d(relu_x, torch.cat([f.conv_1.weight for f in frs]), stride=2)
    y2 = F.conv2d(relu_x[:, :, 1:, 1:], torch.cat([f.conv_2.weight for f in frs]), stride=2)
    y1 = _batch_norm(y1, frs[0].bn).unflatten(1, (E, half))
    y2 = _batch_norm(y2, frs[0].bn).unflatten(1, (E, half))
    return torch.cat([y1, y2], dim=2)


def _weighted_blocks(y: torch.Tensor, w: torch.Tensor, cols: list[int], E: int) -> torch.Tensor:
    """y [N, P * E * C, H, W] (op-major, then edge) -> sum_p w[e, cols[p]] y[p, e] as [N, E, C, H, W]."""
    P = len(cols)
    y = y.unflatten(1, (P, E, y.shape[1] // (P * E)))
    wp = torch.stack([w[:, c] for c in cols]).view(1, P, E, 1, 1, 1)
    return (y * wp).sum(1)
