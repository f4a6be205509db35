"""`darts-nas bench search|train`: time the search step, or the evaluation network's training step, on synthetic data.

Each configuration runs in a child process so that its peak memory is its own (on CPU the figure is the child's
peak resident set size, which includes PyTorch itself; on CUDA it is ``torch.cuda.max_memory_allocated``).
Figures are medians over timed steps after warm-up; images/s counts the training batch of a step, as the
published figures do.
"""

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

from .errors import DartsNasError

# Published implementation (original DARTS code), same math and sizes; darts-facts section 9 and issue 2.
# Training step of the evaluation network (DARTS_V2, C=36, 20 cells, batch 96, fp32), images/s, measured on an
# H100 (the card's name is not checked: on another GPU the comparison is only indicative).
PUBLISHED_TRAIN = {("h100", 96, 36, 20): 659.0}
PUBLISHED = {
    # (device kind, batch, C, layers): {order: seconds per step}
    ("cpu-2core", 16, 8, 5): {1: 1.38, 2: 3.63},
    ("cpu-2core", 64, 16, 8): {1: 17.8, 2: 40.8},
    ("h100", 64, 16, 8): {1: 0.895, 2: 3.125},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_search_step(device: str, batch_size: int, channels: int, layers: int, order: int, hvp: str,
                        steps: int, warmup: int, channels_last: bool = True, seed: int = 0) -> dict:
    """Run `warmup` + `steps` search steps of the given configuration in this process and time each."""
    from .config import SearchConfig
    from .run.common import resolve_device
    from .run.search import build_optimizers, build_search_model
    from .strategies import Bilevel

    dev = resolve_device(device)
    torch.manual_seed(seed)
    config = SearchConfig(channels=channels, layers=layers, batch_size=batch_size, order=order, hvp=hvp,
                          channels_last=channels_last)
    model = build_search_model(config, num_classes=10, in_channels=3).to(dev)
    w_opt, a_opt = build_optimizers(model, config)
    strategy = Bilevel(order=order, hvp=hvp)
    g = torch.Generator(device=dev).manual_seed(seed)
    batches = [(torch.randn(batch_size, 3, 32, 32, device=dev, generator=g),
                torch.randint(0, 10, (batch_size,), device=dev, generator=g)) for _ in range(2)]
    timing = _time_steps(lambda: strategy.step(model, batches[0], batches[1], w_opt, a_opt, config.lr,
                                               config.grad_clip), dev, batch_size, warmup, steps)
    return {"what": "search", "device": str(dev), "batch_size": batch_size, "channels": channels, "layers": layers,
            "order": order, "hvp": hvp if order == 2 else None, "steps": steps, "warmup": warmup,
            "channels_last": channels_last, **timing}


def measure_train_step(device: str, batch_size: int, channels: int, layers: int, genotype: str, precision: str,
                       channels_last: bool, steps: int, warmup: int, seed: int = 0) -> dict:
    """Time `warmup` + `steps` training steps of the evaluation network (auxiliary head on, drop-path 0.2, SGD with
    the CIFAR recipe's settings) on random CIFAR-shaped data, in this process."""
    from .genotype import load_genotype
    from .nets import NetworkCIFAR
    from .run.common import resolve_device
    from .run.train import train_step

    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = NetworkCIFAR(load_genotype(genotype), C=channels, layers=layers, num_classes=10, auxiliary=True)
    model = model.use_channels_last(channels_last).to(dev).train()
    model.drop_path_prob = 0.2
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    g = torch.Generator(device=dev).manual_seed(seed)
    x = torch.randn(batch_size, 3, 32, 32, device=dev, generator=g)
    y = torch.randint(0, 10, (batch_size,), device=dev, generator=g)
    timing = _time_steps(lambda: train_step(model, opt, x, y, 0.4, 0.0, 5.0, precision), dev, batch_size, warmup,
                         steps)
    return {"what": "train", "device": str(dev), "batch_size": batch_size, "channels": channels, "layers": layers,
            "genotype": genotype, "precision": precision, "channels_last": channels_last, "steps": steps,
            "warmup": warmup, **timing}


def _time_steps(step, dev: torch.device, batch_size: int, warmup: int, steps: int) -> dict:
    """Run `step` warmup + steps times, synchronizing after each; median and min over the timed ones, the first
    step's time (warm-up, allocation, compilation), images/s of the median, and peak memory."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    all_times = []
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        _sync(dev)
        all_times.append(time.perf_counter() - t0)
    times = all_times[warmup:]
    median = statistics.median(times)
    peak, mem_kind = _peak_memory(dev)
    return {"median_s": median, "min_s": min(times), "images_per_s": batch_size / median,
            "first_step_s": all_times[0], "peak_memory_bytes": peak, "memory_kind": mem_kind,
            "threads": torch.get_num_threads()}


def _peak_memory(dev: torch.device) -> tuple[int, str]:
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


def run_child(args: dict, what: str = "search") -> dict:
    """Run one measurement in a fresh Python process (so peak memory is its own) and return its result."""
    cmd = [sys.executable, "-m", "darts_nas.bench", what, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DartsNasError(f"{what} benchmark ({', '.join(f'{k}={v}' for k, v in args.items())}) failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def published_for(result: dict):
    kind = "h100" if result["device"].startswith("cuda") else "cpu-2core"
    ref = PUBLISHED.get((kind, result["batch_size"], result["channels"], result["layers"]))
    return ref.get(result["order"]) if ref else None


def format_table(results: list[dict]) -> str:
    head = (f"{'order':<22} {'batch':>5} {'C':>3} {'cells':>5} {'s/step':>8} {'img/s':>7} {'first s':>8} "
            f"{'peak mem':>10} {'published s/step':>17} {'speed-up':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        name = "first" if r["order"] == 1 else f"second ({r['hvp']})"
        ref = published_for(r)
        ref_s = f"{ref:.3f}" if ref else "-"
        speedup = f"{ref / r['median_s']:.2f}x" if ref else "-"
        lines.append(f"{name:<22} {r['batch_size']:>5} {r['channels']:>3} {r['layers']:>5} {r['median_s']:>8.3f} "
                     f"{r['images_per_s']:>7.1f} {r['first_step_s']:>8.2f} {r['peak_memory_bytes'] / 2**30:>8.2f}GB "
                     f"{ref_s:>17} {speedup:>8}")
    return "\n".join(lines)


def bench_search(device="cpu", batch_size=64, channels=16, layers=8, orders=(1, 2), hvps=("finite-difference",),
                 steps=5, warmup=2, channels_last=True, echo=print) -> list[dict]:
    results = []
    for order in orders:
        for hvp in (hvps if order == 2 else ("finite-difference",)):
            args = dict(device=device, batch_size=batch_size, channels=channels, layers=layers, order=order,
                        hvp=hvp, steps=steps, warmup=warmup, channels_last=channels_last)
            echo(f"timing order {order}{' (' + hvp + ')' if order == 2 else ''}: batch {batch_size}, C={channels}, "
                 f"{layers} cells, {warmup} warm-up + {steps} timed steps on {device} ...")
            results.append(run_child(args))
    return results


def bench_train(device="cpu", batch_size=96, channels=36, layers=20, genotype="DARTS_V2", precisions=("fp32",),
                channels_last=True, steps=3, warmup=1, echo=print) -> list[dict]:
    results = []
    for precision in precisions:
        args = dict(device=device, batch_size=batch_size, channels=channels, layers=layers, genotype=genotype,
                    precision=precision, channels_last=channels_last, steps=steps, warmup=warmup)
        echo(f"timing the training step of {genotype} (C={channels}, {layers} cells, batch {batch_size}, {precision}"
             f"{', channels-last' if channels_last else ''}): {warmup} warm-up + {steps} timed steps on {device} ...")
        results.append(run_child(args, "train"))
    return results


def format_train_table(results: list[dict]) -> str:
    head = (f"{'genotype':<10} {'precision':<9} {'NHWC':<5} {'batch':>5} {'C':>3} {'cells':>5} {'s/step':>8} "
            f"{'img/s':>8} {'first s':>8} {'peak mem':>10} {'published img/s':>16} {'speed-up':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        kind = "h100" if r["device"].startswith("cuda") else "cpu-2core"
        ref = None
        if r["genotype"].upper() in ("DARTS_V2", "DARTS") and r["precision"] == "fp32":  # the published setting
            ref = PUBLISHED_TRAIN.get((kind, r["batch_size"], r["channels"], r["layers"]))
        ref_s = f"{ref:.0f}" if ref else "-"
        speedup = f"{r['images_per_s'] / ref:.2f}x" if ref else "-"
        lines.append(f"{r['genotype']:<10} {r['precision']:<9} {'yes' if r['channels_last'] else 'no':<5} "
                     f"{r['batch_size']:>5} {r['channels']:>3} {r['layers']:>5} {r['median_s']:>8.3f} "
                     f"{r['images_per_s']:>8.1f} {r['first_step_s']:>8.2f} {r['peak_memory_bytes'] / 2**30:>8.2f}GB "
                     f"{ref_s:>16} {speedup:>8}")
    return "\n".join(lines)


if __name__ == "__main__":  # child process of run_child: python -m darts_nas.bench search|train JSON
    measure = {"search": measure_search_step, "train": measure_train_step}[sys.argv[1]]
    print(json.dumps(measure(**json.loads(sys.argv[2]))))
