"""What every benchmark shares: timing a step, peak memory, the machine line, a measurement in a child process."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from ..errors import DartsNasError
from ..run.common import resolve_device
from ..run.graphs import require_cuda_graphs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(batch_size: int, dev: torch.device, g: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(batch_size, 3, 32, 32, device=dev, generator=g),
            torch.randint(0, 10, (batch_size,), device=dev, generator=g)]


def time_steps(step, dev: torch.device, batch_size: int, warmup: int, steps: int, startup: int = 1) -> dict:
    """Run `step` warmup + steps times (at least `startup` untimed), synchronizing after each; median and min over
    the timed ones, the time of the `startup` first steps (allocation, cuDNN plans, graph capture), images/s of
    the median, and peak memory."""
    warmup = max(warmup, startup)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    all_times = []
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        sync(dev)
        all_times.append(time.perf_counter() - t0)
    times = all_times[warmup:]
    median = statistics.median(times)
    peak, mem_kind = peak_memory(dev)
    return {"median_s": median, "min_s": min(times), "images_per_s": batch_size / median,
            "first_step_s": sum(all_times[:startup]), "warmup": warmup, "peak_memory_bytes": peak,
            "memory_kind": mem_kind, "threads": torch.get_num_threads()}


def peak_memory(dev: torch.device) -> tuple[int, str]:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev), "cuda max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def machine_description(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads (torch {torch.__version__})"


def run_child(args: dict, what: str = "search", nproc: int = 0, threads: int = 0) -> dict:
    """Run one measurement in a fresh Python process (so peak memory is its own) and return its result; with
    `nproc`, in `nproc` processes started by torchrun (rank 0 reports). `threads` sets each process's threads."""
    cmd = [sys.executable, "-m", "darts_nas.bench", what, json.dumps(args)]
    if nproc:
        cmd[1:2] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        errors = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if "Error" in ln or "error" in ln]
        tail = errors[-1:] or (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DartsNasError(f"{what} benchmark ({', '.join(f'{k}={v}' for k, v in args.items())}) failed: {tail[0]}")
    return json.loads(lines[-1])


def check_cell(r: dict) -> str:
    return f"{r['check']['max_rel_loss_diff']:.1e}" if "check" in r else "-"


def step_name(r: dict) -> str:
    """first / second (hvp) for bilevel DARTS; the strategy's name otherwise."""
    strategy = r.get("strategy", "bilevel")
    if strategy == "single-level":
        return strategy
    if strategy == "implicit":
        return f"implicit ({r['hvp']})"
    return "first" if r["order"] == 1 else f"second ({r['hvp']})"


def check_device(device: str, options: dict) -> None:
    """Refuse a bad device or --cuda-graphs without CUDA here, in one line, before any child process starts."""
    dev = resolve_device(device)
    if options.get("cuda_graphs"):
        require_cuda_graphs(dev)
