"""Multi-split reversible stacks with backpropagation by reconstruction.

The memory-efficient Transformer DARTS of Zhao et al. ("Memory-Efficient Differentiable Transformer Architecture
Search", Findings of ACL 2021, arXiv:2105.14669) searches through a multi-split reversible network: the backward
pass rebuilds each layer's inputs from its outputs, so only the top layer's outputs are kept. No code was
published; the coupling generalizes RevNet's (Gomez et al., arXiv:1707.04585) y1 = x1 + F(x2), y2 = x2 + G(y1).

A block holds the hidden state as ``n`` parts ``x_1..x_n`` (each ``[B, T, d]``) and updates them in turn, each
from the sum of the others at that moment::

    y_i = x_i + F_i(y_1 + ... + y_{i-1} + x_{i+1} + ... + x_n)          i = 1..n

and its inverse walks back, ``x_i = y_i - F_i(y_1 + ... + y_{i-1} + x_{i+1} + ... + x_n)`` for i = n..1 (the
argument of F_i holds only parts already known). n = 2 is RevNet's coupling exactly.

:class:`ReversibleStack` runs blocks through :class:`_ReversibleFunction`, a custom autograd function whose
forward keeps nothing but the stack's outputs (and the side inputs every block reads: the encoder memory and
masks, the op weights), and whose backward walks the blocks top-down: per function it evaluates ``F_i`` once with
autograd on, subtracts it to reconstruct ``x_i``, and takes the vector-Jacobian product of that same evaluation,
so the extra cost over plain backpropagation is one forward pass. Functions with dropout replay their masks: each
call's seed is drawn from the CPU generator in the forward pass and reused in the backward.

``F_i(h, side, w)`` is any module taking the combined state, the side inputs and its row of op weights (None for
a fixed architecture). The parameters go through the function as inputs, so evaluating the stack at other
weights with ``torch.func.functional_call`` (the second-order hypergradient's w' and w +- r v) differentiates
at those weights too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def _others(parts: list[torch.Tensor], i: int) -> torch.Tensor:
    """The sum of every part but part i: what F_i reads."""
    out = None
    for j, p in enumerate(parts):
        if j != i:
            out = p if out is None else out + p
    return out


class ReversibleBlock(nn.Module):
    """One multi-split reversible block: ``len(functions)`` parts (n >= 2), each updated by its function."""

    def __init__(self, functions):
        super().__init__()
        if len(functions) < 2:
            raise ValueError("a reversible block needs at least 2 parts")
        self.functions = nn.ModuleList(functions)

    @property
    def splits(self) -> int:
        return len(self.functions)

    def forward(self, parts, side, weights=None, seeds=None):
        """The block's outputs from its inputs (``parts``: a list of n tensors). ``weights``: [n, ops] or None;
        ``seeds``: a list that receives (forward) the dropout seed of each call, for the reconstruction."""
        parts = list(parts)
        for i, f in enumerate(self.functions):
            w = None if weights is None else weights[i]
            parts[i] = parts[i] + _call(f, None, _others(parts, i), side, w, seeds)
        return parts

    def inverse(self, parts, side, weights=None, seeds=None):
        """The block's inputs from its outputs: the exact inverse of :meth:`forward` (same seeds, same masks)."""
        parts = list(parts)
        for i in reversed(range(len(self.functions))):
            w = None if weights is None else weights[i]
            seed = None if seeds is None else seeds[i]
            parts[i] = parts[i] - _call(self.functions[i], None, _others(parts, i), side, w, None, seed)
        return parts


def _call(f, params, h, side, w, seeds=None, seed=None):
    """F(h, side, w), at `params` (a name -> tensor dict, or None for the module's own), with its dropout masks
    drawn from `seed` when given; when `seeds` is a list, a fresh seed is drawn, used and appended to it."""
    if seeds is not None:
        seed = int(torch.randint(0, 2 ** 62, (), device="cpu"))  # CPU generator: no device round trip
        seeds.append(seed)
    if seed is None:
        return f(h, side, w) if params is None else functional_call(f, params, (h, side, w))
    devices = [h.device] if h.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return f(h, side, w) if params is None else functional_call(f, params, (h, side, w))


class _ReversibleFunction(torch.autograd.Function):
    """The whole stack as one autograd node. Inputs: the stack (a Python object), n, the side inputs' count, then
    the n input parts, the op weights ([blocks, n, ops], or an empty tensor), the side tensors and every block's
    parameters in order. Saved for backward: the n output parts, the op weights and the side tensors."""

    @staticmethod
    def forward(ctx, stack, n, n_side, *args):
        parts = list(args[:n])
        weights = args[n]
        side = tuple(args[n + 1: n + 1 + n_side])
        ctx.stack, ctx.n, ctx.n_side = stack, n, n_side
        ctx.params = args[n + 1 + n_side:]  # the parameters themselves (held by the model anyway), not activations
        ctx.has_weights = weights.numel() > 0
        ctx.seeds = [] if stack.replay_dropout() else None
        for b, block in enumerate(stack.blocks):
            w = weights[b] if ctx.has_weights else None
            seeds = None if ctx.seeds is None else []
            parts = block(parts, side, w, seeds)
            if ctx.seeds is not None:
                ctx.seeds.append(seeds)
        parts = [p.detach() for p in parts]
        ctx.save_for_backward(*parts, weights, *side)
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        n, n_side, stack = ctx.n, ctx.n_side, ctx.stack
        saved = ctx.saved_tensors
        parts = [p.detach() for p in saved[:n]]
        weights = saved[n]
        side_in = saved[n + 1:]
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(parts, grads)]
        # The side tensors as leaves of each function's evaluation; their gradients add up over all calls.
        side = tuple(s.detach().requires_grad_(s.requires_grad)
                     if s is not None and torch.is_floating_point(s) else s for s in side_in)
        side = stack.side_meta(side)
        side_grads = [None] * n_side
        w_grad = torch.zeros_like(weights) if ctx.has_weights and weights.requires_grad else None
        param_grads: list = [None] * len(ctx.params)
        offset = len(ctx.params)
        for b in reversed(range(len(stack.blocks))):
            block = stack.blocks[b]
            offset -= stack.block_param_counts[b]
            names = stack.block_param_names[b]
            block_params = ctx.params[offset: offset + len(names)]
            for i in reversed(range(n)):
                f = block.functions[i]
                prefix = f"functions.{i}."
                fnames = [(k, nm[len(prefix):]) for k, nm in enumerate(names) if nm.startswith(prefix)]
                fparams = {short: block_params[k].detach().requires_grad_(block_params[k].requires_grad)
                           for k, short in fnames}
                w = None
                if ctx.has_weights:
                    w = weights[b, i].detach().requires_grad_(w_grad is not None)
                seed = None if ctx.seeds is None else ctx.seeds[b][i]
                with torch.enable_grad():
                    h = _others(parts, i).detach().requires_grad_()
                    out = _call(f, fparams, h, side.tensors, w, None, seed)
                with torch.no_grad():
                    parts[i] = parts[i] - out  # the reconstructed input part
                leaves = [h] + [t for t in side.grad_leaves] + ([w] if w is not None and w.requires_grad else []) \
                    + [fparams[short] for _, short in fnames if fparams[short].requires_grad]
                got = torch.autograd.grad(out, leaves, grads[i], allow_unused=True)
                gh = got[0]
                if gh is not None:
                    for j in range(n):
                        if j != i:
                            grads[j] = grads[j] + gh
                k = 1
                for s_idx in side.grad_index:
                    if got[k] is not None:
                        side_grads[s_idx] = got[k] if side_grads[s_idx] is None else side_grads[s_idx] + got[k]
                    k += 1
                if w is not None and w.requires_grad:
                    if got[k] is not None:
                        w_grad[b, i] += got[k]
                    k += 1
                for idx, short in fnames:
                    if fparams[short].requires_grad:
                        g = got[k]
                        k += 1
                        if g is not None:
                            pos = offset + idx
                            param_grads[pos] = g if param_grads[pos] is None else param_grads[pos] + g
            # parts now hold block b's inputs: the outputs of block b - 1
        ctx.stack = None
        return (None, None, None, *grads, w_grad, *side_grads, *param_grads)


class SideInputs:
    """The side inputs of a stack's functions (``tensors``: e.g. (memory, memory mask, self mask)) and which of
    them carry gradients (the encoder memory does; boolean masks do not)."""

    def __init__(self, tensors):
        self.tensors = tuple(tensors)
        self.grad_index = [k for k, t in enumerate(self.tensors)
                           if t is not None and torch.is_floating_point(t) and t.requires_grad]
        self.grad_leaves = [self.tensors[k] for k in self.grad_index]


class ReversibleStack(nn.Module):
    """Blocks of multi-split reversible coupling. ``forward(parts, side, weights)``: reversible (backpropagation
    by reconstruction) when ``self.reversible`` and gradients are on, else plain autograd through the same blocks.
    ``weights``: op weights [blocks, n, ops] of a search (None for a fixed architecture)."""

    def __init__(self, blocks, reversible: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.reversible = reversible
        self.splits = self.blocks[0].splits if len(self.blocks) else 2
        self.block_param_names = [[n for n, _ in b.named_parameters()] for b in self.blocks]
        self.block_param_counts = [len(names) for names in self.block_param_names]

    def replay_dropout(self) -> bool:
        return self.training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.modules())

    @staticmethod
    def side_meta(side) -> SideInputs:
        return SideInputs(side)

    def forward(self, parts, side=(), weights=None):
        parts = list(parts)
        if not self.reversible or not torch.is_grad_enabled():
            for b, block in enumerate(self.blocks):
                parts = block(parts, side, None if weights is None else weights[b])
            return parts
        params = [t for b in self.blocks for _, t in b.named_parameters()]
        w = weights if weights is not None else parts[0].new_zeros(0)
        side = tuple(side)
        return list(_ReversibleFunction.apply(self, len(parts), len(side), *parts, w, *side, *params))

    def inverse(self, parts, side=(), weights=None):
        """The stack's inputs from its outputs (no gradients): what the backward pass reconstructs."""
        with torch.no_grad():
            parts = list(parts)
            for b in reversed(range(len(self.blocks))):
                parts = self.blocks[b].inverse(parts, side, None if weights is None else weights[b])
        return parts
