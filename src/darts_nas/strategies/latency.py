"""Latency as a search objective (UNAS, arXiv:1912.07651): measure sampled discrete architectures of a space on the
user's own device, fit a linear surrogate from the architecture's op weights to milliseconds, and penalize the
surrogate's estimate during the search.

- Measuring: the search model at a discrete architecture (one op per edge, only the chosen ops run, eval mode,
  no gradients) on a batch of the table's size; ``repeats`` timed forwards after ``warmup`` untimed ones, CUDA
  synchronized around each; the median, in ms. The table first runs one search-sized step of the whole supernet
  (:func:`warm_up`), so that it measures in the state a search runs in (on a CPU a fresh process measured 3-4x
  slower; see docs/benchmarks.md).
- The surrogate: ridge regression (lambda = 1, intercept unpenalized) from the concatenated one-hot rows of every
  alpha matrix to the measured ms, fitted on 80% of the sampled architectures; R^2 and the mean absolute error on
  the other 20% say how far to trust it. Being linear in the op weights, it also reads relaxed weights, which is
  how the penalty reaches the alphas.
- The penalty (added to the alphas' objective by :class:`darts_nas.strategies.ArchRegularizer`):
  c_t relu(estimate(p) - target), p = the op probabilities, c_t = weight * min(alpha steps / warm-up steps, 1).
- Each epoch the derived architecture's latency is measured and recorded (``latency_ms``) next to the surrogate's
  estimate (``latency_estimate_ms``).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DartsNasError
from ..fileio import atomic_write_json
from ..settings import SettingsGroup, setting

VERSION = 1


@dataclass
class LatencySettings(SettingsGroup):
    """The latency table a search records against and UNAS' penalty on its estimate."""

    latency_table: str = setting("", "a latency table of this supernet (darts-nas latency-table): record the derived "
                                 "cell's measured and estimated latency each epoch, and with --latency-weight "
                                 "penalize it")
    latency_target: float = setting(0.0, "UNAS latency penalty: the target in ms (penalized above it)")
    latency_weight: float = setting(0.0, "UNAS latency penalty: weight c of c relu(estimate - target) (UNAS: 0.1; 0: "
                                    "off)")
    latency_warmup_steps: int = setting(30000, "UNAS latency penalty: alpha steps over which its weight ramps from 0 "
                                        "(UNAS: 30000; 0: none)")

    @classmethod
    def problems(cls, config) -> list[str]:
        problems = []
        if config.latency_weight < 0 or config.latency_target < 0 or config.latency_warmup_steps < 0:
            problems.append("--latency-weight, --latency-target and --latency-warmup-steps cannot be negative")
        if config.latency_weight > 0 and not config.latency_table:
            problems.append("--latency-weight needs --latency-table (measure one with `darts-nas latency-table`)")
        space = config.search_space()
        if config.latency_table and space is not None and space.data_kind != "images":
            problems.append("latency tables measure image spaces")
        return problems


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(fn, device: torch.device, repeats: int = 10, warmup: int = 2) -> list[float]:
    """Wall-clock ms of `fn()` in each of `repeats` calls after `warmup` untimed ones, synchronized on CUDA."""
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(1000.0 * (time.perf_counter() - t0))
    return times


def median_ms(fn, device: torch.device, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall-clock ms of `fn()` over `repeats` calls after `warmup` untimed ones."""
    return statistics.median(timed_ms(fn, device, repeats, warmup))


@torch.no_grad()
def measure_times(model, weights: dict[str, torch.Tensor], inputs: torch.Tensor, repeats: int = 10,
                  warmup: int = 2) -> list[float]:
    """The ms of each timed forward of `model` at the discrete architecture `weights` (one-hot rows)."""
    was_training = model.training
    model.eval()
    try:
        with model.fixed_op_weights(weights, hard=True):
            return timed_ms(lambda: model(inputs), inputs.device, repeats, warmup)
    finally:
        model.train(was_training)


def measure(model, weights: dict[str, torch.Tensor], inputs: torch.Tensor, repeats: int = 10,
            warmup: int = 2) -> float:
    """Median ms of one forward of `model` at the discrete architecture `weights` (one-hot rows) on `inputs`."""
    return statistics.median(measure_times(model, weights, inputs, repeats, warmup))


@torch.no_grad()
def measure_network(model, inputs: torch.Tensor, repeats: int = 10, warmup: int = 2) -> float:
    """Median ms of one inference forward (eval mode) of an evaluation network on `inputs`."""
    was_training = model.training
    model.eval()
    try:
        return median_ms(lambda: model(inputs), inputs.device, repeats, warmup)
    finally:
        model.train(was_training)


def warm_up(model, inputs: torch.Tensor, images: int = 64) -> None:
    """Run the whole supernet forward and backward once on `images` images, as a search step does, then drop the
    gradients. Measured on a CPU, a fresh process is up to 4x slower than one that has trained (the allocator
    hands out fresh pages until the process has once held a search step's memory): the table measures in the state
    a search, and a deployed network, run in."""
    was_training = model.training
    model.train()
    x = inputs[:1].expand(images, *inputs.shape[1:]).contiguous()
    model(x).float().logsumexp(1).mean().backward()
    for p in model.parameters():
        p.grad = None
    model.train(was_training)


def random_architecture(model, generator: torch.Generator, mixed: bool = False) -> dict[str, torch.Tensor]:
    """One op per row of every alpha matrix (one-hot rows): uniformly at random, or with ``mixed`` from op
    frequencies drawn for this architecture (a flat Dirichlet per matrix), so that some architectures are mostly
    cheap ops and others mostly costly ones. Uniform draws average over the rows, and their latencies bunch
    around one value (in the proxyless space at 32 px, 15 times timing noise's spread closer than the fastest
    and slowest architectures); mixed draws cover the range a search travels."""
    out = {}
    for name, a in model.alphas.items():
        if mixed:
            freq = -torch.log(torch.rand(a.shape[1], generator=generator).clamp_min(1e-12))
            idx = torch.multinomial(freq / freq.sum(), a.shape[0], replacement=True, generator=generator)
        else:
            idx = torch.randint(0, a.shape[1], (a.shape[0],), generator=generator)
        out[name] = torch.nn.functional.one_hot(idx, a.shape[1]).to(device=a.device, dtype=a.dtype)
    return out


def flatten(weights: dict[str, torch.Tensor], names) -> torch.Tensor:
    return torch.cat([weights[n].reshape(-1) for n in names])


def fit_ridge(x: torch.Tensor, y: torch.Tensor, ridge: float = 1.0) -> tuple[torch.Tensor, float]:
    """(coefficients, intercept) minimizing ||y - x c - b||^2 + ridge ||c||^2 (float64; b unpenalized)."""
    x, y = x.double(), y.double()
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    coef = torch.linalg.solve(xc.T @ xc + ridge * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ (y - my))
    return coef, float(my - mx @ coef)


RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)


def choose_ridge(x: torch.Tensor, y: torch.Tensor, folds: int = 5) -> float:
    """The ridge weight of :data:`RIDGES` with the least squared error in `folds`-fold cross-validation."""
    n = x.shape[0]
    errors = []
    for ridge in RIDGES:
        err = 0.0
        for f in range(folds):
            test = torch.zeros(n, dtype=torch.bool)
            test[f * n // folds:(f + 1) * n // folds] = True
            coef, intercept = fit_ridge(x[~test], y[~test], ridge)
            err += float(((x[test].double() @ coef + intercept - y[test].double()) ** 2).sum())
        errors.append(err)
    return RIDGES[min(range(len(RIDGES)), key=errors.__getitem__)]


class LatencyTable:
    """A fitted surrogate: per alpha matrix a coefficient matrix of its shape, and an intercept (ms)."""

    def __init__(self, coef: dict[str, torch.Tensor], intercept: float, info: dict):
        self.coef, self.intercept, self.info = coef, intercept, info

    def estimate(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """The surrogate's ms at op weights (one-hot or relaxed); differentiable in the weights."""
        total = None
        for name, c in self.coef.items():
            w = weights[name]
            term = (w * c.to(device=w.device, dtype=w.dtype)).sum()
            total = term if total is None else total + term
        return total + self.intercept

    def check_model(self, model) -> None:
        """Refuse a search whose supernet is not the one the table measured (space and sizes; the class count, the
        relaxation and Max-W do not change which ops run)."""
        if self.info.get("space") != model.space or _shape(self.info.get("hparams", {})) != _shape(model.hparams):
            raise DartsNasError(f"the latency table {self.info.get('path', '')} measured a {self.info.get('space')} "
                                f"supernet with {self.info.get('hparams')}; this search builds {model.space} with "
                                f"{_plain(model.hparams)}; measure it again with the search's settings")

    def save(self, path) -> None:
        atomic_write_json(Path(path), {"version": VERSION, **self.info, "intercept": self.intercept,
                                       "coef": {k: v.tolist() for k, v in self.coef.items()}})

    @classmethod
    def load(cls, path) -> "LatencyTable":
        try:
            d = json.loads(Path(path).read_text())
            coef = {k: torch.tensor(v, dtype=torch.float64) for k, v in d["coef"].items()}
            intercept = float(d["intercept"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DartsNasError(f"{path}: not a latency table written by `darts-nas latency-table` ({e})") from None
        info = {k: v for k, v in d.items() if k not in ("coef", "intercept", "version")}
        info["path"] = str(path)
        return cls(coef, intercept, info)


def _plain(hparams: dict) -> dict:
    return json.loads(json.dumps(hparams, default=str))


def _shape(hparams: dict) -> dict:
    # what does not change which ops run, or their cost: the class count, the relaxation, Max-W, a penalty weight
    return {k: v for k, v in _plain(hparams).items() if k not in ("num_classes", "relaxation", "max_w", "pair_penalty")}


def build_table(model, inputs: torch.Tensor, samples: int = 200, repeats: int = 10, warmup: int = 2, seed: int = 0,
                ridge: float = 1.0, echo=print, info: dict | None = None) -> LatencyTable:
    """Measure `samples` random architectures of `model` on `inputs`, fit the surrogate on 80% of them, report its
    R^2 and mean absolute error on the rest.

    Each architecture's latency is the median of `repeats` timed forwards, taken in rounds of two: every round
    times every architecture once more (after one untimed forward). On a shared machine a slowdown lasts seconds;
    timed back to back, it would land on a few architectures and pass for their cost, while spread over rounds it
    lands on every architecture alike and the median drops it."""
    if samples < 10:
        raise DartsNasError("--samples must be at least 10 (the fit holds out a fifth of them)")
    names = list(model.alphas.keys())
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    warm_up(model, inputs)
    measure(model, random_architecture(model, g), inputs, 1, warmup)  # first-call allocations, not timed
    chosen = [random_architecture(model, g, mixed=True) for _ in range(samples)]
    archs = [flatten({k: v.cpu() for k, v in arch.items()}, names) for arch in chosen]
    times: list[list[float]] = [[] for _ in chosen]
    rounds = -(-repeats // 2)
    for r in range(rounds):
        per_round = min(2, repeats - 2 * r)
        for i, arch in enumerate(chosen):
            times[i] += measure_times(model, arch, inputs, per_round, 1)
        echo(f"  round {r + 1}/{rounds}: every architecture timed {len(times[0])}x ({time.perf_counter() - t0:.0f} s)")
    ms = [statistics.median(t) for t in times]
    x, y = torch.stack(archs).double(), torch.tensor(ms, dtype=torch.float64)
    split = int(0.8 * samples)
    if ridge <= 0:
        ridge = choose_ridge(x[:split], y[:split])
    coef, intercept = fit_ridge(x[:split], y[:split], ridge)
    pred = x[split:] @ coef + intercept
    held = y[split:]
    r2 = float(1 - ((held - pred) ** 2).sum() / ((held - held.mean()) ** 2).sum().clamp_min(1e-12))
    mae = float((held - pred).abs().mean())
    shapes = {n: tuple(model.alphas[n].shape) for n in names}
    coefs, offset = {}, 0
    for n in names:
        size = shapes[n][0] * shapes[n][1]
        coefs[n] = coef[offset:offset + size].reshape(shapes[n])
        offset += size
    info = {**(info or {}), "space": model.space, "hparams": _plain(model.hparams), "primitives": list(model.primitives),
            "input_shape": list(inputs.shape), "device": str(inputs.device), "samples": samples, "repeats": repeats,
            "ridge": ridge, "held_out": samples - split, "r2": r2, "mae_ms": mae,
            "latency_ms": {"min": float(y.min()), "median": float(y.median()), "max": float(y.max())},
            "date": time.strftime("%Y-%m-%d")}
    return LatencyTable(coefs, intercept, info)
