"""The op bank of the reversible Transformer's residual functions (:mod:`darts_nas.nets.transformer`), names as
in :mod:`darts_nas.genotypes.transformer`: ``attn_H`` self-attention with H heads; ``enc_attn_H`` attention to the
encoder output; ``sep_conv_K`` depthwise K-wide conv, ReLU, pointwise; ``light_conv_K`` GLU input projection,
lightweight conv (Wu et al., arXiv:1901.10430: K-wide kernels shared by the channels of each of 4 heads,
softmax-normalized over the width), output projection; ``dw_conv_K`` depthwise conv; ``glu`` a linear layer to 2d
and a gated linear unit; ``ffn`` d -> 4d -> d with ReLU; ``identity``; ``zero`` (no module). In a decoder every
convolution is causal (padded on the left only).

Every op maps ``[B, T, d]`` to ``[B, T, d]`` and takes the function's side inputs ``(memory [B, S, d] or None,
self-attention mask or None, encoder-attention mask or None, keep [B, T, 1] or None)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x, side):
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=side[1])
        return self.out(y.transpose(1, 2).reshape(B, T, d))


class EncoderAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x, side):
        memory = side[0]
        B, T, d = x.shape
        S = memory.shape[1]
        q = self.q(x).view(B, T, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.kv(memory).view(B, S, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=side[2])
        return self.out(y.transpose(1, 2).reshape(B, T, d))


def _conv_input(x, side, k: int, causal: bool):
    """[B, T, d] -> [B, d, T + pad] with padding tokens zeroed (they must not leak into their neighbours)."""
    if side[3] is not None:
        x = x * side[3]
    x = x.transpose(1, 2)
    return F.pad(x, (k - 1, 0) if causal else (k // 2, k // 2))


class DepthwiseConv(nn.Module):
    def __init__(self, d: int, k: int, causal: bool):
        super().__init__()
        self.k, self.causal = k, causal
        self.conv = nn.Conv1d(d, d, k, groups=d)

    def forward(self, x, side):
        return self.conv(_conv_input(x, side, self.k, self.causal)).transpose(1, 2)


class SeparableConv(nn.Module):
    def __init__(self, d: int, k: int, causal: bool):
        super().__init__()
        self.depthwise = DepthwiseConv(d, k, causal)
        self.pointwise = nn.Linear(d, d)

    def forward(self, x, side):
        return self.pointwise(F.relu(self.depthwise(x, side)))


class LightweightConv(nn.Module):
    def __init__(self, d: int, k: int, causal: bool, heads: int = 4):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} lightweight-conv heads")
        self.k, self.causal, self.heads = k, causal, heads
        self.inp = nn.Linear(d, 2 * d)
        self.kernel = nn.Parameter(torch.randn(heads, k) * 0.1)
        self.out = nn.Linear(d, d)

    def forward(self, x, side):
        d = x.shape[-1]
        h = F.glu(self.inp(x), dim=-1)
        w = torch.softmax(self.kernel, dim=-1).repeat_interleave(d // self.heads, dim=0).unsqueeze(1)  # [d, 1, k]
        y = F.conv1d(_conv_input(h, side, self.k, self.causal), w, groups=d)
        return self.out(y.transpose(1, 2))


class GLU(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.proj = nn.Linear(d, 2 * d)

    def forward(self, x, side):
        return F.glu(self.proj(x), dim=-1)


class FeedForward(nn.Module):
    def __init__(self, d: int, expand: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(d, expand * d)
        self.fc2 = nn.Linear(expand * d, d)

    def forward(self, x, side):
        return self.fc2(F.relu(self.fc1(x)))


class Identity(nn.Module):
    def forward(self, x, side):
        return x


def transformer_op(name: str, d: int, causal: bool) -> nn.Module | None:
    """The op of a name (None for ``zero``)."""
    if name == "zero":
        return None
    if name == "identity":
        return Identity()
    kind, _, arg = name.rpartition("_")
    if kind == "attn":
        return SelfAttention(d, int(arg))
    if kind == "enc_attn":
        return EncoderAttention(d, int(arg))
    if kind == "sep_conv":
        return SeparableConv(d, int(arg), causal)
    if kind == "light_conv":
        return LightweightConv(d, int(arg), causal)
    if kind == "dw_conv":
        return DepthwiseConv(d, int(arg), causal)
    if name == "glu":
        return GLU(d)
    if name == "ffn":
        return FeedForward(d)
    raise ValueError(f"unknown Transformer op {name!r}")
