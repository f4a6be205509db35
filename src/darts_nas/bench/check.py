"""A timed step, checked against the plain setting's step from the same start (--check)."""

from __future__ import annotations

import torch

from .. import distributed
from .common import time_steps


def measure(what: str, config, setup, inputs, dev, warmup: int, steps: int, check: bool, seed: int,
            fields: dict) -> dict:
    """Time the step that `setup(config, dev, seed)` builds on `inputs`; with `check` and a speed setting on,
    compare it with the plain setting's step from the same start (drop-path masks included: both setups reseed)."""
    model, step = setup(config, dev, seed)
    timing = time_steps(lambda: step(*inputs), dev, config.batch_size, warmup, steps, _startup_steps(step))
    result = {"what": what, **fields, **timing, "ranks": distributed.world_size()}
    plain = _plain(config)
    if check and plain != config:
        del model, step
        result["check"] = _compare_runs(lambda: setup(config, dev, seed), lambda: setup(plain, dev, seed), inputs)
    return result


def _compare_runs(make_fast, make_plain, inputs, steps: int = 4) -> dict:
    """Run `steps` steps (enough to reach a CUDA-graph replay) of both setups from the same start on `inputs`.
    The figure that says "the same function" is the largest relative difference of the step losses: parameters
    drift apart by rounding, and Adam's first steps turn rounding-sized alpha gradients into full-sized steps, so
    the parameter differences (also reported) are larger without anything being wrong."""
    runs = []
    for make in (make_fast, make_plain):
        model, step = make()
        losses = [step(*inputs)[0].detach().float().clone() for _ in range(steps)]
        runs.append((torch.stack(losses).cpu(), [p.detach().float().clone() for p in model.parameters()]))
        del model, step
    (loss_fast, params_fast), (loss_plain, params_plain) = runs
    rel = [((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item() for a, b in zip(params_fast, params_plain)]
    return {"steps": steps, "max_rel_loss_diff": ((loss_fast - loss_plain).abs() / loss_plain.abs()).max().item(),
            "max_rel_param_diff": max(rel), "losses": loss_fast.tolist(), "plain_losses": loss_plain.tolist()}


def _plain(config):
    """`config` with every speed setting it has at its plain value (fp32, per-op kernels, eager, no recompute)."""
    plain = {"precision": "fp32", "fuse_ops": False, "checkpoint_cells": False, "cuda_graphs": False}
    return type(config)(**{**config.to_dict(), **{k: v for k, v in plain.items() if hasattr(config, k)}})


def _startup_steps(step) -> int:
    """Steps until the step runs as it will from then on: the first, or for a CUDA graph the eager warm-up steps
    and the capture."""
    from ..run.graphs import CapturedStep

    return step.warmup + 1 if isinstance(step, CapturedStep) else 1
