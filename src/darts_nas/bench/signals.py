"""bench signals: the share of a preset's search that its Hessian collapse signal adds."""

from __future__ import annotations

import time

import torch

from ..errors import DartsNasError
from ..run.common import resolve_device
from .common import check_device, random_batch, run_child, sync, time_steps


_TRAIN_IMAGES = {"cifar10": 50000, "cifar100": 50000, "sample": 1000}


def measure_signal_share(preset: str, device: str = "cpu", steps: int = 2, warmup: int = 1, batch_size: int = 0,
                         seed: int = 0) -> dict:
    """The share of a preset's search that its collapse signal (the Hessian eigenvalue of the alphas) adds, at the
    preset's own settings: time `steps` search steps and one estimate (``hessian_batches`` x ``hessian_iters``,
    every iteration forced) on random batches of its size, then scale by how often the run estimates and how many
    steps its epochs have. ``batch_size`` times at a smaller batch (both figures scale alike)."""
    from ..config import preset_config
    from ..run.search import build_optimizers, build_search_model, hessian_due, search_step_fn
    from ..strategies import alpha_hessian_eigenvalue, strategy_from_config

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
    train, val = random_batch(config.batch_size, dev, g), random_batch(config.batch_size, dev, g)
    timing = time_steps(lambda: step(*train, *val), dev, config.batch_size, warmup, steps)
    batches = [random_batch(config.batch_size, dev, g) for _ in range(max(config.hessian_batches, 1))]
    sync(dev)
    t0 = time.perf_counter()
    alpha_hessian_eigenvalue(model, batches, max(config.hessian_iters, 1), tol=0.0,
                             generator=torch.Generator().manual_seed(seed))
    sync(dev)
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
    check_device(device, {})
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
