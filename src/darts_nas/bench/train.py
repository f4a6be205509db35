"""bench train: the evaluation network's training step."""

from __future__ import annotations

import torch

from .. import distributed
from ..config import speed_label
from ..run.common import resolve_device
from .check import measure
from .common import check_cell, check_device, random_batch, run_child
from .scaling import run_scaling


def measure_train_step(device: str, batch_size: int, channels: int, layers: int, genotype: str, precision: str,
                       channels_last: bool, steps: int, warmup: int, cuda_graphs: bool = False, check: bool = False,
                       seed: int = 0) -> dict:
    """Time `warmup` + `steps` training steps of the evaluation network (auxiliary head on, drop-path 0.2, SGD with
    the CIFAR recipe's settings) on random CIFAR-shaped data, in this process. `check` as for the search step."""
    from ..config import TrainConfig

    dev = distributed.setup(resolve_device(device))
    config = TrainConfig(genotype=genotype, channels=channels, layers=layers, batch_size=batch_size,
                         precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs).validate()
    batch = random_batch(batch_size, dev, torch.Generator(device=dev).manual_seed(seed))
    batch = [distributed.shard(t) for t in batch]
    return measure("train", config, _train_setup, batch, dev, warmup, steps, check, seed,
                    {"device": str(dev), "batch_size": batch_size, "channels": channels, "layers": layers,
                     "genotype": genotype, "precision": precision, "channels_last": channels_last,
                     "cuda_graphs": cuda_graphs, "steps": steps})


def _train_setup(config, dev, seed: int):
    from ..genotypes import Genotype, load_genotype
    from ..nets import NetworkCIFAR
    from ..run.common import make_sgd
    from ..run.train import train_step_fn

    torch.manual_seed(seed)
    model = NetworkCIFAR(load_genotype(config.genotype, Genotype), C=config.channels, layers=config.layers, num_classes=10,
                         auxiliary=True)
    model = model.use_channels_last(config.channels_last).to(dev).train()
    opt = make_sgd(model.parameters(), config.lr, config.momentum, config.weight_decay, config.cuda_graphs)
    step = train_step_fn(model, opt, config)
    model.drop_path_prob = config.drop_path_prob
    torch.manual_seed(seed)
    return model, step


def bench_train(device="cpu", batch_size=96, channels=36, layers=20, genotype="DARTS_V2", precisions=("fp32",),
                channels_last=True, steps=3, warmup=1, echo=print, nproc: int = 1, **options) -> list[dict]:
    check_device(device, options)
    results = []
    for precision in precisions:
        args = dict(device=device, batch_size=batch_size, channels=channels, layers=layers, genotype=genotype,
                    precision=precision, channels_last=channels_last, steps=steps, warmup=warmup, **options)
        echo(f"timing the training step of {genotype} (C={channels}, {layers} cells, batch {batch_size}, "
             f"{speed_label(args)}): {warmup} warm-up + {steps} timed steps on {device} ...")
        results.append(run_scaling(args, "train", nproc, echo) if nproc > 1 else run_child(args, "train"))
    return results


def format_train_table(results: list[dict]) -> str:
    """One row per precision, with only figures this command measured (as format_table)."""
    head = (f"{'genotype':<10} {'setup':<18} {'batch':>5} {'C':>3} {'cells':>5} {'s/step':>8} "
            f"{'img/s':>8} {'first s':>8} {'peak mem':>10} {'vs plain':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['genotype']:<10} {speed_label(r):<18} {r['batch_size']:>5} {r['channels']:>3} "
                     f"{r['layers']:>5} {r['median_s']:>8.3f} {r['images_per_s']:>8.1f} {r['first_step_s']:>8.2f} "
                     f"{r['peak_memory_bytes'] / 2**30:>8.2f}GB {check_cell(r):>8}")
    return "\n".join(lines)
