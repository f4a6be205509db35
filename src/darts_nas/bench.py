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
from pathlib import Path

import torch

from . import distributed
from .config import speed_label
from .errors import DartsNasError
from .run.common import resolve_device
from .run.graphs import require_cuda_graphs

# Published implementation (original DARTS code), same math and sizes, as measured (docs/benchmarks.md).
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
                        steps: int, warmup: int, channels_last: bool = True, precision: str = "fp32",
                        fuse_ops: bool = False, checkpoint_cells: bool = False, cuda_graphs: bool = False,
                        partial_channels: int = 1, edge_normalization: bool = False, check: bool = False,
                        seed: int = 0, strategy: str = "bilevel") -> dict:
    """Run `warmup` + `steps` search steps of the given configuration in this process and time each. With
    `check` and any speed setting on, also run a few steps of the plain setting (fp32, per-op kernels, eager) from
    the same initial weights on the same batches and report how far the losses differ (see _compare_runs)."""
    from .config import SearchConfig

    dev = distributed.setup(resolve_device(device))
    config = SearchConfig(strategy=strategy, channels=channels, layers=layers, batch_size=batch_size, order=order,
                          hvp=hvp,
                          channels_last=channels_last, precision=precision, fuse_ops=fuse_ops,
                          checkpoint_cells=checkpoint_cells, cuda_graphs=cuda_graphs,
                          partial_channels=partial_channels, edge_normalization=edge_normalization).validate()
    g = torch.Generator(device=dev).manual_seed(seed)
    batches = _random_batch(batch_size, dev, g) + _random_batch(batch_size, dev, g)  # training, validation
    batches = [distributed.shard(t) for t in batches]  # under torchrun: this rank's share of the global batch
    return _measure("search", config, _search_setup, batches, dev, warmup, steps, check, seed,
                    {"device": str(dev), "strategy": strategy, "batch_size": batch_size, "channels": channels, "layers": layers,
                     "order": order, "hvp": hvp if order == 2 else None, "steps": steps,
                     "channels_last": channels_last, "precision": precision, "fuse_ops": fuse_ops,
                     "checkpoint_cells": checkpoint_cells, "cuda_graphs": cuda_graphs,
                     "partial_channels": partial_channels, "edge_normalization": edge_normalization})


def _measure(what: str, config, setup, inputs, dev, warmup: int, steps: int, check: bool, seed: int,
             fields: dict) -> dict:
    """Time the step that `setup(config, dev, seed)` builds on `inputs`; with `check` and a speed setting on,
    compare it with the plain setting's step from the same start (drop-path masks included: both setups reseed)."""
    model, step = setup(config, dev, seed)
    timing = _time_steps(lambda: step(*inputs), dev, config.batch_size, warmup, steps, _startup_steps(step))
    result = {"what": what, **fields, **timing, "ranks": distributed.world_size()}
    plain = _plain(config)
    if check and plain != config:
        del model, step
        result["check"] = _compare_runs(lambda: setup(config, dev, seed), lambda: setup(plain, dev, seed), inputs)
    return result


def _search_setup(config, dev, seed: int):
    """A search model, its optimizers and its step function, as a search run builds them."""
    from .run.search import build_optimizers, build_search_model, search_step_fn
    from .strategies import strategy_from_config

    torch.manual_seed(seed)
    model = build_search_model(config, num_classes=10, in_channels=3).to(dev)
    w_opt, a_opt = build_optimizers(model, config)
    return model, search_step_fn(model, strategy_from_config(config), w_opt, a_opt, config)


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


def measure_train_step(device: str, batch_size: int, channels: int, layers: int, genotype: str, precision: str,
                       channels_last: bool, steps: int, warmup: int, cuda_graphs: bool = False, check: bool = False,
                       seed: int = 0) -> dict:
    """Time `warmup` + `steps` training steps of the evaluation network (auxiliary head on, drop-path 0.2, SGD with
    the CIFAR recipe's settings) on random CIFAR-shaped data, in this process. `check` as for the search step."""
    from .config import TrainConfig

    dev = distributed.setup(resolve_device(device))
    config = TrainConfig(genotype=genotype, channels=channels, layers=layers, batch_size=batch_size,
                         precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs).validate()
    batch = _random_batch(batch_size, dev, torch.Generator(device=dev).manual_seed(seed))
    batch = [distributed.shard(t) for t in batch]
    return _measure("train", config, _train_setup, batch, dev, warmup, steps, check, seed,
                    {"device": str(dev), "batch_size": batch_size, "channels": channels, "layers": layers,
                     "genotype": genotype, "precision": precision, "channels_last": channels_last,
                     "cuda_graphs": cuda_graphs, "steps": steps})


def _train_setup(config, dev, seed: int):
    from .genotypes import Genotype, load_genotype
    from .nets import NetworkCIFAR
    from .run.common import make_sgd
    from .run.train import train_step_fn

    torch.manual_seed(seed)
    model = NetworkCIFAR(load_genotype(config.genotype, Genotype), C=config.channels, layers=config.layers, num_classes=10,
                         auxiliary=True)
    model = model.use_channels_last(config.channels_last).to(dev).train()
    opt = make_sgd(model.parameters(), config.lr, config.momentum, config.weight_decay, config.cuda_graphs)
    step = train_step_fn(model, opt, config)
    model.drop_path_prob = config.drop_path_prob
    torch.manual_seed(seed)
    return model, step


def _random_batch(batch_size: int, dev: torch.device, g: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(batch_size, 3, 32, 32, device=dev, generator=g),
            torch.randint(0, 10, (batch_size,), device=dev, generator=g)]


def _plain(config):
    """`config` with every speed setting it has at its plain value (fp32, per-op kernels, eager, no recompute)."""
    plain = {"precision": "fp32", "fuse_ops": False, "checkpoint_cells": False, "cuda_graphs": False}
    return type(config)(**{**config.to_dict(), **{k: v for k, v in plain.items() if hasattr(config, k)}})


def _startup_steps(step) -> int:
    """Steps until the step runs as it will from then on: the first, or for a CUDA graph the eager warm-up steps
    and the capture."""
    from .run.graphs import CapturedStep

    return step.warmup + 1 if isinstance(step, CapturedStep) else 1


def _time_steps(step, dev: torch.device, batch_size: int, warmup: int, steps: int, startup: int = 1) -> dict:
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
        _sync(dev)
        all_times.append(time.perf_counter() - t0)
    times = all_times[warmup:]
    median = statistics.median(times)
    peak, mem_kind = _peak_memory(dev)
    return {"median_s": median, "min_s": min(times), "images_per_s": batch_size / median,
            "first_step_s": sum(all_times[:startup]), "warmup": warmup, "peak_memory_bytes": peak,
            "memory_kind": mem_kind, "threads": torch.get_num_threads()}


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
        name = _step_name(r) if r["what"] == "search" else f"train {r['genotype']}"
        lines.append(f"{name:<26} {r['ranks']:>5} {r['per_rank_batch']:>10} {r['threads']:>7} {r['single_s']:>9.3f} "
                     f"{r['median_s']:>9.3f} {r['single_images_per_s']:>8.1f} {r['images_per_s']:>8.1f} "
                     f"{100 * r['efficiency']:>9.1f}%")
    lines.append("weak scaling: the same batch per rank; efficiency = s/step of 1 process / s/step of the ranks "
                 "(100%: N times the images in the same time)")
    return "\n".join(lines)


def published_for(result: dict):
    kind = "h100" if result["device"].startswith("cuda") else "cpu-2core"
    ref = PUBLISHED.get((kind, result["batch_size"], result["channels"], result["layers"]))
    return ref.get(result["order"]) if ref else None


def _check_cell(r: dict) -> str:
    return f"{r['check']['max_rel_loss_diff']:.1e}" if "check" in r else "-"


def _step_name(r: dict) -> str:
    """first / second (hvp) for bilevel DARTS; the strategy's name otherwise."""
    strategy = r.get("strategy", "bilevel")
    if strategy == "single-level":
        return strategy
    if strategy == "implicit":
        return f"implicit ({r['hvp']})"
    return "first" if r["order"] == 1 else f"second ({r['hvp']})"


def format_table(results: list[dict]) -> str:
    head = (f"{'step':<26} {'setup':<24} {'batch':>5} {'C':>3} {'cells':>5} {'s/step':>8} {'img/s':>7} "
            f"{'first s':>8} {'peak mem':>10} {'published':>9} {'speed-up':>8} {'vs plain':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        name = _step_name(r)
        ref = published_for(r) if r.get("strategy", "bilevel") == "bilevel" else None
        ref_s = f"{ref:.3f}" if ref else "-"
        speedup = f"{ref / r['median_s']:.2f}x" if ref else "-"
        lines.append(f"{name:<26} {speed_label(r):<24} {r['batch_size']:>5} {r['channels']:>3} {r['layers']:>5} "
                     f"{r['median_s']:>8.3f} {r['images_per_s']:>7.1f} {r['first_step_s']:>8.2f} "
                     f"{r['peak_memory_bytes'] / 2**30:>8.2f}GB {ref_s:>9} {speedup:>8} {_check_cell(r):>8}")
    lines.append("published: s/step of the original code on the same card kind and sizes; vs plain (--check): "
                 "largest relative difference of the losses of 4 steps against fp32 eager per-op steps")
    return "\n".join(lines)


def _check_device(device: str, options: dict) -> None:
    """Refuse a bad device or --cuda-graphs without CUDA here, in one line, before any child process starts."""
    dev = resolve_device(device)
    if options.get("cuda_graphs"):
        require_cuda_graphs(dev)


def bench_search(device="cpu", batch_size=64, channels=16, layers=8, orders=(1, 2), hvps=("finite-difference",),
                 steps=5, warmup=2, channels_last=True, echo=print, nproc: int = 1, **options) -> list[dict]:
    """Time each order (and Hessian-vector product) with the given `options` (precision, fuse_ops, checkpoint_cells,
    cuda_graphs, partial_channels, edge_normalization, check), each in a child process; with `nproc` > 1 the
    scaling over that many ranks (:func:`run_scaling`)."""
    _check_device(device, options)
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
            echo(f"timing {_step_name(args)}, {speed_label(args)}: batch "
                 f"{batch_size}, C={channels}, {layers} cells, {warmup} warm-up + {steps} timed steps on {device} ...")
            results.append(run_scaling(args, "search", nproc, echo) if nproc > 1 else run_child(args))
    return results


def bench_train(device="cpu", batch_size=96, channels=36, layers=20, genotype="DARTS_V2", precisions=("fp32",),
                channels_last=True, steps=3, warmup=1, echo=print, nproc: int = 1, **options) -> list[dict]:
    _check_device(device, options)
    results = []
    for precision in precisions:
        args = dict(device=device, batch_size=batch_size, channels=channels, layers=layers, genotype=genotype,
                    precision=precision, channels_last=channels_last, steps=steps, warmup=warmup, **options)
        echo(f"timing the training step of {genotype} (C={channels}, {layers} cells, batch {batch_size}, "
             f"{speed_label(args)}): {warmup} warm-up + {steps} timed steps on {device} ...")
        results.append(run_scaling(args, "train", nproc, echo) if nproc > 1 else run_child(args, "train"))
    return results


def format_train_table(results: list[dict]) -> str:
    head = (f"{'genotype':<10} {'setup':<18} {'batch':>5} {'C':>3} {'cells':>5} {'s/step':>8} "
            f"{'img/s':>8} {'first s':>8} {'peak mem':>10} {'published img/s':>16} {'speed-up':>8} {'vs plain':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        kind = "h100" if r["device"].startswith("cuda") else "cpu-2core"
        ref = None
        if r["genotype"].upper() in ("DARTS_V2", "DARTS"):  # the published network and sizes
            ref = PUBLISHED_TRAIN.get((kind, r["batch_size"], r["channels"], r["layers"]))
        ref_s = f"{ref:.0f}" if ref else "-"
        speedup = f"{r['images_per_s'] / ref:.2f}x" if ref else "-"
        lines.append(f"{r['genotype']:<10} {speed_label(r):<18} {r['batch_size']:>5} {r['channels']:>3} "
                     f"{r['layers']:>5} {r['median_s']:>8.3f} {r['images_per_s']:>8.1f} {r['first_step_s']:>8.2f} "
                     f"{r['peak_memory_bytes'] / 2**30:>8.2f}GB {ref_s:>16} {speedup:>8} {_check_cell(r):>8}")
    return "\n".join(lines)


# -- architecture-gradient estimators -------------------------------------------------------------------------
def bench_estimators(samples: int = 20000, taus=(1.0, 0.5, 0.3, 0.1), seed: int = 0) -> list[dict]:
    """Bias and variance of each estimator of d E_q[f(b)] / d alpha on a tiny space (2 edges x 3 ops, float64)
    whose exact gradient is enumerated, for f = a floored table of the two choices (non-differentiable; UNAS' control
    variate: the table without the floor, bilinear in the relaxed weights). Bias in standard errors (the largest
    element of |mean - exact| / SE); variance summed over the 6 elements."""
    from .estimators import exact_gradient, per_sample_gradients

    g = torch.Generator().manual_seed(seed)
    alpha = torch.randn(2, 3, dtype=torch.float64, generator=g)
    table = 3 * torch.randn(3, 3, dtype=torch.float64, generator=g)

    def f(b):
        return torch.floor(b[..., 0, :] @ table @ b[..., 1, :])

    def h(w):
        return w[..., 0, :] @ table @ w[..., 1, :]

    exact = exact_gradient(alpha, f)
    mean_f = float(sum(torch.softmax(alpha, -1)[0, i] * torch.softmax(alpha, -1)[1, j] * torch.floor(table[i, j])
                       for i in range(3) for j in range(3)))
    rows = []
    for tau in taus:
        for name, method, kw in (("REINFORCE", "reinforce", {}), ("REINFORCE, baseline E[f]", "reinforce",
                                                                  {"baseline": mean_f}),
                                 ("UNAS (REBAR, control variate h)", "unas", {"f_relaxed": h}),
                                 ("relaxed (on h)", "relaxed", {"f_relaxed": h})):
            grads = per_sample_gradients(method, alpha, f, kw.get("f_relaxed"), samples, tau, kw.get("baseline", 0.0),
                                         torch.Generator().manual_seed(seed + 1))
            se = grads.std(0) / samples ** 0.5
            rows.append({"estimator": name, "tau": tau, "samples": samples,
                         "bias_se": float(((grads.mean(0) - exact).abs() / se).max()),
                         "variance": float(grads.var(0).sum())})
    plain = {r["tau"]: r["variance"] for r in rows if r["estimator"] == "REINFORCE"}
    for r in rows:
        r["variance_vs_reinforce"] = r["variance"] / plain[r["tau"]]
    return rows


def format_estimators_table(rows: list[dict]) -> str:
    head = f"{'estimator':<34} {'tau':>5} {'bias (SE)':>10} {'variance':>10} {'vs REINFORCE':>13}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['estimator']:<34} {r['tau']:>5.2f} {r['bias_se']:>10.2f} {r['variance']:>10.3f} "
                     f"{r['variance_vs_reinforce']:>13.2f}")
    lines.append("bias: largest |mean - exact| in standard errors over the 6 alpha elements (under ~4: unbiased at "
                 "this sample size); variance: summed over the elements")
    return "\n".join(lines)


# -- the recurrent space -------------------------------------------------------------------------------------
def _tokens(batch_size: int, bptt: int, vocab: int, dev: torch.device, g: torch.Generator) -> list[torch.Tensor]:
    t = torch.randint(0, vocab, (bptt + 1, batch_size), device=dev, generator=g)
    return [t[:-1], t[1:]]


def measure_rnn_search_step(device: str, batch_size: int = 256, bptt: int = 35, units: int = 300, vocab: int = 10000,
                            order: int = 1, hvp: str = "finite-difference", steps: int = 3, warmup: int = 1,
                            seed: int = 0) -> dict:
    """The recurrent search step (darts-ptb settings: 8 nodes, SGD lr 20, clip 0.25 also in the virtual step) on
    random tokens of a `vocab`-word vocabulary, windows of exactly `bptt`, hidden state carried."""
    from .config import preset_config
    from .run.search import build_optimizers
    from .spaces.darts_rnn import DartsRNNSearchModel
    from .strategies import Bilevel

    dev = resolve_device(device)
    c = preset_config("darts-ptb", batch_size=batch_size, bptt=bptt, units=units, order=order, hvp=hvp)
    torch.manual_seed(seed)
    model = DartsRNNSearchModel(vocab, units=units, steps=c.nodes, tar=c.tar).to(dev)
    w_opt, a_opt = build_optimizers(model, c)
    strategy = Bilevel(order=order, hvp=hvp, virtual_clip=c.virtual_step_clip)
    g = torch.Generator(device=dev).manual_seed(seed)
    train, val = _tokens(batch_size, bptt, vocab, dev, g), _tokens(batch_size, bptt, vocab, dev, g)
    hidden = {"train": model.init_hidden(batch_size), "val": model.init_hidden(batch_size)}

    def step():
        _, hidden["train"], hidden["val"] = strategy.step(model, (*train, hidden["train"]), (*val, hidden["val"]),
                                                          w_opt, a_opt, c.lr, c.grad_clip)

    r = _time_steps(step, dev, batch_size * bptt, warmup, steps)
    r["tokens_per_s"] = r.pop("images_per_s")
    return {"device": str(dev), "batch_size": batch_size, "bptt": bptt, "units": units, "vocab": vocab,
            "order": order, "hvp": hvp if order == 2 else None, "steps": steps, **r}


def measure_lm_train_step(device: str, batch_size: int = 64, bptt: int = 35, units: int = 850, vocab: int = 10000,
                          genotype: str = "DARTS_V2", steps: int = 3, warmup: int = 1, seed: int = 0) -> dict:
    """The evaluation language model's training step (darts-ptb-eval settings) on random tokens."""
    from .config import train_preset_config
    from .nets.rnn import activation_penalty, lm_cross_entropy, parameter_count
    from .genotypes import load_recurrent_genotype
    from .run.lm import build_lm

    dev = resolve_device(device)
    c = train_preset_config("darts-ptb-eval", batch_size=batch_size, bptt=bptt, units=units, genotype=genotype)
    torch.manual_seed(seed)
    model = build_lm(c, load_recurrent_genotype(genotype), vocab).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    g = torch.Generator(device=dev).manual_seed(seed)
    x, y = _tokens(batch_size, bptt, vocab, dev, g)
    state = {"hidden": model.init_hidden(batch_size)}

    def step():
        logits, last, raw, dropped = model(x, state["hidden"])
        state["hidden"] = last.detach()
        opt.zero_grad(set_to_none=True)
        (lm_cross_entropy(logits, y) + activation_penalty(raw, dropped, c.ar, c.tar)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip, foreach=True)
        opt.step()

    r = _time_steps(step, dev, batch_size * bptt, warmup, steps)
    r["tokens_per_s"] = r.pop("images_per_s")
    return {"device": str(dev), "batch_size": batch_size, "bptt": bptt, "units": units, "vocab": vocab,
            "genotype": genotype, "params": parameter_count(model), "steps": steps, **r}


def bench_rnn(what: str, device="cpu", echo=print, orders=(1, 2), hvps=("finite-difference",), **args) -> list[dict]:
    """`what` = "rnn-search" (each order / product) or "lm-train", each measurement in a child process."""
    _check_device(device, {})
    if what == "lm-train":
        echo(f"timing the language model's training step ({args}) on {device} ...")
        return [run_child(dict(device=device, **args), what)]
    results = []
    for order in orders:
        for hvp in (hvps if order == 2 else ("finite-difference",)):
            echo(f"timing the recurrent search step, order {order}{' (' + hvp + ')' if order == 2 else ''} "
                 f"({args}) on {device} ...")
            results.append(run_child(dict(device=device, order=order, hvp=hvp, **args), what))
    return results


def format_rnn_table(results: list[dict]) -> str:
    head = (f"{'step':<30} {'batch':>5} {'BPTT':>4} {'units':>5} {'vocab':>6} {'s/step':>8} {'tokens/s':>9} "
            f"{'first s':>8} {'peak mem':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        if "genotype" in r:
            name = f"LM training ({r['genotype']}, {r['params'] / 1e6:.1f}M)"
        else:
            name = "search, first order" if r["order"] == 1 else f"search, second ({r['hvp']})"
        lines.append(f"{name:<30} {r['batch_size']:>5} {r['bptt']:>4} {r['units']:>5} {r['vocab']:>6} "
                     f"{r['median_s']:>8.3f} {r['tokens_per_s']:>9.0f} {r['first_step_s']:>8.2f} "
                     f"{r['peak_memory_bytes'] / 2**30:>8.2f}GB")
    return "\n".join(lines)


# -- the collapse signals' share of a search ---------------------------------------------------------------
# Training images that train the weights in each dataset a preset names (the search splits the training set).
_TRAIN_IMAGES = {"cifar10": 50000, "cifar100": 50000, "sample": 1000}


def measure_signal_share(preset: str, device: str = "cpu", steps: int = 2, warmup: int = 1, batch_size: int = 0,
                         seed: int = 0) -> dict:
    """The share of a preset's search that its collapse signal (the Hessian eigenvalue of the alphas) adds, at the
    preset's own settings: time `steps` search steps and one estimate (``hessian_batches`` x ``hessian_iters``,
    every iteration forced) on random batches of its size, then scale by how often the run estimates and how many
    steps its epochs have. ``batch_size`` times at a smaller batch (both figures scale alike)."""
    from .config import preset_config
    from .run.search import build_optimizers, build_search_model, hessian_due, search_step_fn
    from .strategies import alpha_hessian_eigenvalue, strategy_from_config

    config = preset_config(preset)
    if config.dataset not in _TRAIN_IMAGES:
        raise DartsNasError(f"bench signals times the image presets (not {preset}: {config.dataset})")
    dev = resolve_device(device)
    config = preset_config(preset, device=device, **({"batch_size": batch_size} if batch_size else {})).validate()
    torch.manual_seed(seed)
    model = build_search_model(config, num_classes=10, in_channels=3).to(dev)
    w_opt, a_opt = build_optimizers(model, config)
    step = search_step_fn(model, strategy_from_config(config), w_opt, a_opt, config)
    g = torch.Generator(device=dev).manual_seed(seed)
    train, val = _random_batch(config.batch_size, dev, g), _random_batch(config.batch_size, dev, g)
    timing = _time_steps(lambda: step(*train, *val), dev, config.batch_size, warmup, steps)
    batches = [_random_batch(config.batch_size, dev, g) for _ in range(max(config.hessian_batches, 1))]
    _sync(dev)
    t0 = time.perf_counter()
    alpha_hessian_eigenvalue(model, batches, max(config.hessian_iters, 1), tol=0.0,
                             generator=torch.Generator().manual_seed(seed))
    _sync(dev)
    estimate_s = time.perf_counter() - t0
    preset_batch = preset_config(preset).batch_size
    steps_per_epoch = int(_TRAIN_IMAGES[config.dataset] * config.train_portion) // preset_batch
    scale = preset_batch / config.batch_size  # timed at a smaller batch: both scale with it
    epochs = config.epochs
    estimates = sum(hessian_due(e, epochs, config.hessian_every) for e in range(epochs))
    search_s = epochs * steps_per_epoch * timing["median_s"] * scale
    added_s = estimates * estimate_s * scale
    return {"preset": preset, "device": str(dev), "batch_size": config.batch_size, "preset_batch": preset_batch,
            "step_s": timing["median_s"], "estimate_s": estimate_s, "hessian_every": config.hessian_every,
            "hessian_batches": config.hessian_batches, "hessian_iters": config.hessian_iters,
            "estimates": estimates, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "share": added_s / search_s if search_s else 0.0}


def bench_signals(presets, device="cpu", steps=2, warmup=1, batch_size=0, echo=print) -> list[dict]:
    _check_device(device, {})
    results = []
    for preset in presets:
        echo(f"timing {preset}: {warmup} warm-up + {steps} search steps and one Hessian estimate on {device} ...")
        results.append(run_child(dict(preset=preset, device=device, steps=steps, warmup=warmup,
                                      batch_size=batch_size), "signals"))
    return results


def format_signals_table(results: list[dict]) -> str:
    head = (f"{'preset':<22} {'batch':>9} {'s/step':>8} {'estimate s':>10} {'every/b/k':>10} {'estimates':>9} "
            f"{'steps/epoch':>11} {'added':>7}")
    lines = [head, "-" * len(head)]
    for r in results:
        batch = f"{r['batch_size']}" + (f"/{r['preset_batch']}" if r["batch_size"] != r["preset_batch"] else "")
        lines.append(f"{r['preset']:<22} {batch:>9} {r['step_s']:>8.2f} {r['estimate_s']:>10.2f} "
                     f"{r['hessian_every']:>4}/{r['hessian_batches']}/{r['hessian_iters']:<3} {r['estimates']:>9} "
                     f"{r['steps_per_epoch']:>11} {100 * r['share']:>6.1f}%")
    lines.append("added: the estimates' time as a share of the search's steps (every power-iteration step forced; "
                 "a smaller timing batch scales both alike)")
    return "\n".join(lines)


def _reversible_setup(device: str, depth: int, reversible: bool, splits: int, d_model: int, batch_size: int,
                      length: int, vocab: int, bank: str, seed: int = 0):
    """The reversible Transformer search model of that size and a batch of random tokens (no padding)."""
    from .spaces import RevTransformerSearchModel

    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = RevTransformerSearchModel(vocab, d_model=d_model, layers=depth, splits=splits, bank=bank,
                                      dropout=0.0, reversible=reversible).to(dev)
    g = torch.Generator().manual_seed(seed + 1)
    src = torch.randint(4, vocab, (batch_size, length), generator=g).to(dev)
    tgt = torch.randint(4, vocab, (batch_size, length + 1), generator=g).to(dev)
    return model, (src, tgt[:, :-1], tgt[:, 1:]), dev


def saved_tensor_bytes(model, batch) -> int:
    """Bytes autograd keeps for the backward of one loss (forward to loss), counted by saved_tensors_hooks;
    tensors sharing a parameter's storage (weights saved by matmuls) are not activations and are left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = model.loss(batch)
    loss.backward()
    return total


def measure_reversible(device: str = "cpu", depth: int = 2, reversible: bool = True, splits: int = 2,
                       d_model: int = 256, batch_size: int = 32, length: int = 64, vocab: int = 8000,
                       bank: str = "evolved", steps: int = 3, warmup: int = 1) -> dict:
    """One reversible Transformer search model's forward+backward: saved-tensor bytes, median seconds, peak
    memory growth over the set-up (CUDA: max allocated; CPU: the process's peak RSS, in a fresh process), and the
    largest reconstruction error of the stacks' inputs (reversible only)."""
    model, batch, dev = _reversible_setup(device, depth, reversible, splits, d_model, batch_size, length, vocab,
                                          bank)
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    saved = saved_tensor_bytes(model, batch)  # the first step: its peak is the one measured
    _sync(dev)
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
    times = []
    for i in range(warmup + steps):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss, _ = model.loss(batch)
        loss.backward()
        _sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    error = None
    if reversible:
        with torch.no_grad():
            net = model.net
            enc_w, dec_w = model._stack_weights(model.op_weights())
            x = net._embed(batch[0])
            side = (None, (batch[0] != 0)[:, None, None, :], None, None)
            parts = [x] * splits
            out = net.encoder(parts, side, enc_w)
            back = net.encoder.inverse(out, side, enc_w)
            error = max(float((a - b).abs().max()) for a, b in zip(back, parts))
    return {"depth": depth, "reversible": reversible, "splits": splits, "d_model": d_model, "batch_size": batch_size,
            "length": length, "vocab": vocab, "bank": bank, "saved_bytes": saved, "peak_bytes": peak,
            "memory_kind": "cuda max allocated" if dev.type == "cuda" else "process peak RSS growth",
            "median_s": statistics.median(times), "reconstruction_error": error,
            "params": sum(p.numel() for p in model.weight_parameters())}


def bench_reversible(device: str = "cpu", depths=(1, 2, 4, 8), echo=print, **args) -> list[dict]:
    results = []
    for depth in depths:
        for reversible in (True, False):
            echo(f"  depth {depth} {'reversible' if reversible else 'plain'} ...")
            results.append(run_child(dict(device=device, depth=depth, reversible=reversible, **args), "reversible"))
    return results


def format_reversible_table(results: list[dict]) -> str:
    r0 = results[0]
    lines = [f"reversible Transformer search model, op bank {r0['bank']}: {r0['splits']} splits, d {r0['d_model']}, "
             f"batch {r0['batch_size']} x {r0['length']} tokens, vocabulary {r0['vocab']}; forward + backward",
             f"{'blocks':>6} {'backward':<13} {'params':>8} {'saved MB':>9} {'peak MB':>8} {'s/step':>7} "
             f"{'reconstruction':>14}"]
    for r in results:
        err = f"{r['reconstruction_error']:.1e}" if r["reconstruction_error"] is not None else "-"
        lines.append(f"{r['depth']:>6} {'reconstructing' if r['reversible'] else 'plain':<13} "
                     f"{r['params'] / 1e6:>7.2f}M {r['saved_bytes'] / 2**20:>9.1f} {r['peak_bytes'] / 2**20:>8.1f} "
                     f"{r['median_s']:>7.3f} {err:>14}")
    by = {(r["depth"], r["reversible"]): r for r in results}
    deepest = max(r["depth"] for r in results)
    if (deepest, True) in by and (deepest, False) in by:
        rev, plain = by[(deepest, True)], by[(deepest, False)]
        lines.append(f"at {deepest} blocks: plain / reconstructing saved bytes {plain['saved_bytes'] / rev['saved_bytes']:.2f}x, "
                     f"peak memory {plain['peak_bytes'] / max(rev['peak_bytes'], 1):.2f}x ({rev['memory_kind']}); "
                     f"time {rev['median_s'] / plain['median_s']:.2f}x")
    lines.append("saved: bytes autograd holds for backward (saved_tensors_hooks; parameters excluded); "
                 "reconstruction: largest |x - inverse(forward(x))| of the encoder stack, fp32")
    return "\n".join(lines)


if __name__ == "__main__":  # child process of run_child: python -m darts_nas.bench KIND JSON
    measure = {"search": measure_search_step, "signals": measure_signal_share, "train": measure_train_step,
               "rnn-search": measure_rnn_search_step, "lm-train": measure_lm_train_step,
               "reversible": measure_reversible}[sys.argv[1]]
    try:
        result = measure(**json.loads(sys.argv[2]))
    except BaseException:
        distributed.shutdown(clean=False)
        raise
    distributed.shutdown()
    if distributed.is_main():
        print(json.dumps(result))
    distributed.exit_process(0)


def bench_hypergradient(run, data: str = "", batches: int = 5) -> list[dict]:
    """The recurrent second-order architecture gradient computed exactly and the DARTS authors' way, at a recurrent
    search's checkpoint, on its corpus' first `batches` training and validation windows (dropout off): per batch,
    both norms, the first-order gradient's norm, ||authors - exact|| / ||exact|| and their cosine."""
    from .data.text import batchify, load_corpus, window
    from .run.search import search_model_from_checkpoint
    from .strategies.bilevel import architecture_gradient, authors_architecture_gradient

    model, state = search_model_from_checkpoint(Path(run) / "checkpoint.pt" if Path(run).is_dir() else run)
    c = state["config"]
    if model.data_kind != "text":
        raise DartsNasError(f"{run}: bench hypergradient compares the recurrent search's hypergradients; this is a "
                            f"{model.space} search")
    corpus = load_corpus(c["dataset"], data or c["data"])
    train_tokens = corpus.train[: c["limit"]] if c.get("limit") else corpus.train
    train, val = batchify(train_tokens, c["batch_size"]), batchify(corpus.valid, c["batch_size"])
    model.eval()  # no dropout: both computations see one function (search BN uses batch statistics)
    bptt, rows = c["bptt"], []
    flat = lambda gs: torch.cat([g.flatten() for g in gs])  # noqa: E731
    for k in range(batches):
        if bptt * (k + 1) + 1 > min(len(train), len(val)):
            break
        tb = (*window(train, bptt * k, bptt), model.init_hidden(c["batch_size"]))
        vb = (*window(val, bptt * k, bptt), model.init_hidden(c["batch_size"]))
        exact = flat(architecture_gradient(model, tb, vb, order=2, eta=c["lr"], weight_decay=c["weight_decay"],
                                           virtual_clip=c["grad_clip"]))
        authors = flat(authors_architecture_gradient(model, tb, vb, eta=c["lr"], weight_decay=c["weight_decay"],
                                                     clip=c["grad_clip"])[0])
        first = flat(architecture_gradient(model, tb, vb, order=1))
        rows.append({"batch": k, "exact_norm": exact.norm().item(), "authors_norm": authors.norm().item(),
                     "first_order_norm": first.norm().item(),
                     "relative_difference": ((authors - exact).norm() / exact.norm()).item(),
                     "cosine": torch.nn.functional.cosine_similarity(authors, exact, dim=0).item(),
                     "epoch": state["epoch"], "run": str(run)})
    return rows


def format_hypergradient_table(rows: list[dict]) -> str:
    lines = [f"{'batch':>5} {'|exact|':>10} {'|authors|':>10} {'|1st order|':>11} {'rel. diff':>10} {'cosine':>7}"]
    lines += [f"{r['batch']:>5} {r['exact_norm']:>10.4g} {r['authors_norm']:>10.4g} {r['first_order_norm']:>11.4g} "
              f"{r['relative_difference']:>10.3f} {r['cosine']:>7.3f}" for r in rows]
    return "\n".join(lines)


# -- RL-DARTS: the encoders' cost per frame -------------------------------------------------------------------
# The heaviest cell of the authors' op set (every kept edge a 3x3 conv): the fixed-cell encoder's upper bound.
RL_BENCH_CELL = ("RLCell(ops='rl', nodes=[[('conv_3x3', 0)], [('conv_3x3', 0), ('conv_3x3', 1)], "
                 "[('conv_3x3', 1), ('conv_3x3', 2)], [('conv_3x3', 2), ('conv_3x3', 3)]])")


def bench_rl(device: str = "cpu", depths=(16, 32, 32), act_batch: int = 64, minibatch: int = 256,
             genotype: str | None = None, steps: int = 3, warmup: int = 1) -> list[dict]:
    """Milliseconds per frame of each RL encoder in a PPO agent on 64x64 Procgen frames: acting (a forward pass
    over `act_batch` environments, no gradient) and learning (PPO loss, backward and Adam step on a minibatch).
    A PPO run costs about act + epochs x learn per frame, plus the environment."""
    from .genotypes.rl import load_rl_cell
    from .rl.encoders import make_encoder
    from .rl.ppo import ActorCritic, ppo_loss
    from .run.common import resolve_device

    dev = resolve_device(device)
    cell = load_rl_cell(genotype or RL_BENCH_CELL)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (max(act_batch, minibatch), 64, 64, 3), dtype=torch.uint8, generator=gen).to(dev)
    results = []
    for label, name, kw in (("IMPALA-CNN", "impala", {}), ("supernet, authors' ops", "darts", {"ops": "rl"}),
                            ("supernet, DARTS ops", "darts", {"ops": "darts"}),
                            ("fixed cell" + ("" if genotype else " (all 3x3 convs)"), "cell", {"genotype": cell})):
        torch.manual_seed(0)
        agent = ActorCritic(make_encoder(name, (64, 64, 3), depths=depths, **kw), 15).to(dev)
        opt = torch.optim.Adam(agent.parameters(), lr=1e-4)
        actions = torch.randint(0, 15, (minibatch,), generator=gen).to(dev)
        zeros = torch.zeros(minibatch, device=dev)
        adv = torch.randn(minibatch, generator=gen).to(dev)

        def act():
            with torch.no_grad():
                agent(obs[:act_batch])

        def learn():
            logits, values = agent(obs[:minibatch])
            loss = ppo_loss(logits, values, actions, zeros - 2.7, zeros, adv, zeros, 0.2, 0.2, 0.5, 0.01)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        timing = {}
        for what, fn, n in (("act", act, act_batch), ("learn", learn, minibatch)):
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(steps):
                _sync(dev)
                t = time.perf_counter()
                fn()
                _sync(dev)
                times.append(time.perf_counter() - t)
            timing[what] = 1e3 * sorted(times)[len(times) // 2] / n
        results.append({"encoder": label, "depths": list(depths), "params": sum(p.numel() for p in agent.parameters()),
                        "act_ms_per_frame": timing["act"], "learn_ms_per_frame": timing["learn"],
                        "act_batch": act_batch, "minibatch": minibatch})
    return results


def format_rl_table(results: list[dict]) -> str:
    lines = ["| encoder | depths | parameters | act ms/frame | learn ms/frame | PPO ms/frame (act + 2 x learn) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['encoder']} | {','.join(map(str, r['depths']))} | {r['params']:,} | "
                     f"{r['act_ms_per_frame']:.2f} | {r['learn_ms_per_frame']:.2f} | "
                     f"{r['act_ms_per_frame'] + 2 * r['learn_ms_per_frame']:.2f} |")
    return "\n".join(lines)
