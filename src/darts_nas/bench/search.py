"""bench search: the search step of each order (and Hessian-vector product) and speed setting."""

from __future__ import annotations

import torch

from .. import distributed
from ..config import speed_label
from ..run.common import resolve_device
from .check import measure
from .common import check_cell, check_device, random_batch, run_child, step_name
from .scaling import run_scaling


def measure_search_step(device: str, batch_size: int, channels: int, layers: int, order: int, hvp: str,
                        steps: int, warmup: int, channels_last: bool = True, precision: str = "fp32",
                        fuse_ops: bool = False, checkpoint_cells: bool = False, cuda_graphs: bool = False,
                        partial_channels: int = 1, edge_normalization: bool = False, check: bool = False,
                        seed: int = 0, strategy: str = "bilevel") -> dict:
    """Run `warmup` + `steps` search steps of the given configuration in this process and time each. With
    `check` and any speed setting on, also run a few steps of the plain setting (fp32, per-op kernels, eager) from
    the same initial weights on the same batches and report how far the losses differ (see _compare_runs)."""
    from ..config import SearchConfig

    dev = distributed.setup(resolve_device(device))
    config = SearchConfig(strategy=strategy, channels=channels, layers=layers, batch_size=batch_size, order=order,
                          hvp=hvp,
                          channels_last=channels_last, precision=precision, fuse_ops=fuse_ops,
                          checkpoint_cells=checkpoint_cells, cuda_graphs=cuda_graphs,
                          partial_channels=partial_channels, edge_normalization=edge_normalization).validate()
    g = torch.Generator(device=dev).manual_seed(seed)
    batches = random_batch(batch_size, dev, g) + random_batch(batch_size, dev, g)  # training, validation
    batches = [distributed.shard(t) for t in batches]  # under torchrun: this rank's share of the global batch
    return measure("search", config, _search_setup, batches, dev, warmup, steps, check, seed,
                    {"device": str(dev), "strategy": strategy, "batch_size": batch_size, "channels": channels, "layers": layers,
                     "order": order, "hvp": hvp if order == 2 else None, "steps": steps,
                     "channels_last": channels_last, "precision": precision, "fuse_ops": fuse_ops,
                     "checkpoint_cells": checkpoint_cells, "cuda_graphs": cuda_graphs,
                     "partial_channels": partial_channels, "edge_normalization": edge_normalization})


def _search_setup(config, dev, seed: int):
    """A search model, its optimizers and its step function, as a search run builds them."""
    from ..run.search import build_optimizers, build_search_model, search_step_fn
    from ..strategies import strategy_from_config

    torch.manual_seed(seed)
    model = build_search_model(config, num_classes=10, in_channels=3).to(dev)
    w_opt, a_opt = build_optimizers(model, config)
    return model, search_step_fn(model, strategy_from_config(config), w_opt, a_opt, config)


def format_table(results: list[dict]) -> str:
    """One row per measured step. Only figures this command measured: a reference timed elsewhere (another
    machine, another day) is no basis for a ratio, so the published figures stay in docs/benchmarks.md."""
    head = (f"{'step':<26} {'setup':<24} {'batch':>5} {'C':>3} {'cells':>5} {'s/step':>8} {'img/s':>7} "
            f"{'first s':>8} {'peak mem':>10} {'vs plain':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{step_name(r):<26} {speed_label(r):<24} {r['batch_size']:>5} {r['channels']:>3} "
                     f"{r['layers']:>5} {r['median_s']:>8.3f} {r['images_per_s']:>7.1f} {r['first_step_s']:>8.2f} "
                     f"{r['peak_memory_bytes'] / 2**30:>8.2f}GB {check_cell(r):>8}")
    lines.append("vs plain (--check): largest relative difference of the losses of 4 steps against fp32 eager "
                 "per-op steps")
    return "\n".join(lines)


def bench_search(device="cpu", batch_size=64, channels=16, layers=8, orders=(1, 2), hvps=("finite-difference",),
                 steps=5, warmup=2, channels_last=True, echo=print, nproc: int = 1, **options) -> list[dict]:
    """Time each order (and Hessian-vector product) with the given `options` (precision, fuse_ops, checkpoint_cells,
    cuda_graphs, partial_channels, edge_normalization, check), each in a child process; with `nproc` > 1 the
    scaling over that many ranks (:func:`run_scaling`)."""
    check_device(device, options)
    results = []
    strategy = options.get("strategy", "bilevel")
    if strategy == "single-level":  # no hypergradient: one row (the HVP choice applies to implicit too)
        orders, hvps = (1,), ("finite-difference",)
    elif strategy == "implicit":
        orders = (2,)
    for order in orders:
        for hvp in (hvps if order == 2 else ("finite-difference",)):
            args = dict(device=device, batch_size=batch_size, channels=channels, layers=layers, order=order,
                        hvp=hvp, steps=steps, warmup=warmup, channels_last=channels_last, **options)
            echo(f"timing {step_name(args)}, {speed_label(args)}: batch "
                 f"{batch_size}, C={channels}, {layers} cells, {warmup} warm-up + {steps} timed steps on {device} ...")
            results.append(run_scaling(args, "search", nproc, echo) if nproc > 1 else run_child(args))
    return results
