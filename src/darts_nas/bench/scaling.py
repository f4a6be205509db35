"""bench search|train --nproc N: weak scaling over N ranks against one process."""

from __future__ import annotations

import os

from .common import run_child, step_name


def run_scaling(args: dict, what: str, nproc: int, echo=print) -> dict:
    """Weak scaling: one process on `args["batch_size"]`, then `nproc` ranks on `nproc` times that batch (the
    same per-rank batch), each process with cores / nproc threads. Efficiency = one process's s/step / the ranks'
    s/step (1.0: the ranks process nproc times the images in the same time)."""
    threads = max(1, (os.cpu_count() or 1) // nproc) if args["device"] == "cpu" else 0
    single = run_child(args, what, threads=threads)
    echo(f"  1 process: {single['median_s']:.3f} s/step; now {nproc} ranks ...")
    many = run_child({**args, "batch_size": args["batch_size"] * nproc, "check": False}, what, nproc, threads)
    return {**many, "single_s": single["median_s"], "single_images_per_s": single["images_per_s"],
            "efficiency": single["median_s"] / many["median_s"], "per_rank_batch": args["batch_size"]}


def format_scaling_table(results: list[dict]) -> str:
    head = (f"{'step':<26} {'ranks':>5} {'batch/rank':>10} {'threads':>7} {'1 proc s':>9} {'N ranks s':>9} "
            f"{'img/s 1':>8} {'img/s N':>8} {'efficiency':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        name = step_name(r) if r["what"] == "search" else f"train {r['genotype']}"
        lines.append(f"{name:<26} {r['ranks']:>5} {r['per_rank_batch']:>10} {r['threads']:>7} {r['single_s']:>9.3f} "
                     f"{r['median_s']:>9.3f} {r['single_images_per_s']:>8.1f} {r['images_per_s']:>8.1f} "
                     f"{100 * r['efficiency']:>9.1f}%")
    lines.append("weak scaling: the same batch per rank; efficiency = s/step of 1 process / s/step of the ranks "
                 "(100%: N times the images in the same time)")
    return "\n".join(lines)
