"""Numeric precision of the forward pass: fp32, or bf16 autocast (matmuls and convolutions in bfloat16, reductions
and the losses in fp32). One helper for the search model, the training loop and evaluation."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str):
    """The autocast context of `precision` on `device`. The weight-cast cache is off: it would hold casts across
    a CUDA graph capture, and every weight is used once per forward anyway."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)
    if precision != "fp32":
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    return contextlib.nullcontext()


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """`t` in fp32 if autocast left it in a 16-bit type (losses are computed in fp32); fp32/fp64 unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t
