"""What every run loop (search, training from scratch) shares: devices, schedules, seeded generators, the NaN
stop, and the rules for starting and resuming a run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .. import distributed
from ..errors import DartsNasError
from ..fileio import atomic_write_text
from .checkpoint import BEST, CHECKPOINT, LAST
from .log import Progress

# What a resumed run may change: where and how fast it runs and how it shows progress, never what it computes.
RESUMABLE_CHANGES = ("device", "progress", "cuda_graphs", "tensorboard")


class NonFiniteLoss(DartsNasError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DartsNasError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DartsNasError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise DartsNasError(f"--device {name}: only cpu and cuda are supported")
    return device


def join_ranks(config) -> torch.device:
    """This process's device, after joining the other ranks when torchrun started several (see
    :mod:`darts_nas.distributed`): checks that the world size divides the global batch, refuses what does not
    run distributed yet, and stops every rank with one message if they were launched with different settings."""
    device = distributed.setup(resolve_device(config.device))
    if distributed.active():
        distributed.shard_size(config.batch_size)
        if config.cuda_graphs:
            raise DartsNasError("--cuda-graphs is not supported in a distributed run yet (the all-reduce would have "
                                "to be captured in the graph); drop it under torchrun")
        distributed.check_same({k: v for k, v in config.to_dict().items() if k != "progress"}, "settings")
    return device


def make_sgd(params, lr: float, momentum: float, weight_decay: float, graph_safe: bool = False):
    """SGD with momentum and L2 weight decay, as the papers use it. ``graph_safe``: PyTorch's fused implementation
    with the learning rate held in a 0-dim tensor on the parameters' device (see hold_lr_in_tensor): the same
    update, with nothing in step() read back to the host, so a CUDA graph can capture it."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=graph_safe or None)
    return hold_lr_in_tensor(opt) if graph_safe else opt


def hold_lr_in_tensor(optimizer):
    """Put each group's learning rate in a 0-dim tensor on its parameters' device; set_lr then fills it in place,
    so a captured step reads the current value. restore_states calls it again after loading a checkpoint."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=group["params"][0].device)
    return optimizer


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """Learning rate of epoch `epoch` (0-based), computed explicitly: lr_min + (lr - lr_min)(1 + cos(pi e/E))/2."""
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * epoch / epochs))


def cosine_power_lr(epoch: int, epochs: int, lr: float, lr_min: float, power: float, warmup: int = 0) -> float:
    """sharpDARTS' Cosine Power Annealing (arXiv:1903.09900) as its authors' code computes it
    (ahundt/sharpDARTS cosine_power_annealing.py @6f593d4), for 0-based `epoch` of `epochs`.

    With t = epoch + 1 - warmup (1-based, shifted past the warm-up) and c(t) = (1 + cos(pi t / (epochs - warmup)))
    / 2, the curve power^(c(t) + 1) is min-max normalized over all the run's epochs to a fraction f in [0, 1] (so
    the last epoch gets lr_min); power 1 gives c(t) itself, plain cosine. The first warmup + 1 epochs instead ramp
    linearly, f = (epoch + 1) / (warmup + 1). lr = lr_min + (lr - lr_min) f."""
    if warmup and epoch <= warmup:
        frac = (epoch + 1) / (warmup + 1)
    else:
        span = epochs - warmup

        def curve(t):
            c = 0.5 * (1.0 + math.cos(math.pi * t / span))
            return c if abs(power - 1.0) < 1e-12 else power ** (c + 1.0)

        values = [curve(t) for t in range(1 - warmup, span + 1)]
        lo, hi = min(values), max(values)
        frac = 1.0 if hi - lo < 1e-300 else (curve(epoch + 1 - warmup) - lo) / (hi - lo)
    return lr_min + (lr - lr_min) * frac


def exponential_lr(epoch: int, lr: float, decay: float) -> float:
    """lr * decay^epoch: the ImageNet recipe's x0.97 per epoch."""
    return lr * decay**epoch


def epoch_generator(seed: int, epoch: int, stream: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(epoch_seed(seed, epoch, stream))
    return g


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """One seed per (run seed, epoch, stream): what makes a resumed run replay an uninterrupted one."""
    return (seed * 1_000_003 + epoch * 7_919 + stream) % (2**63)


def check_finite(value: float, what: str, epoch: int, step: int, last_checkpoint: str, hint: str) -> None:
    if not math.isfinite(value):
        raise NonFiniteLoss(f"the {what} became {value} in epoch {epoch + 1} (by step {step}); the run stopped and "
                            f"{last_checkpoint}. {hint}")


def last_checkpoint_text(run_dir: Path, epochs_done: int) -> str:
    if epochs_done:
        return f"the last good checkpoint (epoch {epochs_done}) is {Path(run_dir) / CHECKPOINT}"
    return "no epoch had finished, so there is no checkpoint"


def refuse_existing_run(run_dir: Path, command: str) -> None:
    if (Path(run_dir) / CHECKPOINT).exists():
        raise DartsNasError(f"{run_dir} already holds a run; continue it with `darts-nas {command} --resume "
                            f"{run_dir}` or choose another --out")


def check_resume(run_dir: Path, changes: dict) -> None:
    """A resumed run keeps its recorded settings; only RESUMABLE_CHANGES may be given again."""
    refused = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if refused:
        raise DartsNasError(f"--resume continues a run with its recorded settings; drop "
                            f"{', '.join('--' + k.replace('_', '-') for k in refused)} (only "
                            f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE_CHANGES)} may change)")
    if not Path(run_dir).is_dir():
        raise DartsNasError(f"--resume {run_dir}: no such run directory")


def restore_states(state: dict, targets: dict, what: str) -> None:
    """Load each checkpoint entry into its module or optimizer (`targets`: key -> object); one clear error if the
    checkpoint was written for something else. An optimizer that held its learning rate in a tensor (graph-safe)
    keeps doing so, whatever form the checkpoint saved it in."""
    try:
        for key, target in targets.items():
            tensor_lr = isinstance(target, torch.optim.Optimizer) and any(
                isinstance(g["lr"], torch.Tensor) for g in target.param_groups)
            target.load_state_dict(state[key])
            if tensor_lr:
                hold_lr_in_tensor(target)
    except (RuntimeError, ValueError, KeyError) as e:
        raise DartsNasError(f"checkpoint does not match this {what}: {str(e).splitlines()[0]}") from None


def genotype_label(spec: str) -> str:
    """How a run's first line names its cell: the spec itself when short, else "given" (pasted text)."""
    return spec if len(spec) <= 60 and "(" not in spec else "given"


def record_launch(run_dir: Path, config, epoch: int, previous: dict | None, echo) -> None:
    """Add to config.json how this invocation runs (world size, per-rank and global batch; `previous`: what it
    recorded before a resume) and, on a resume with another world size, say so in one line. Rank 0 only."""
    from ..fileio import atomic_write_json

    path = Path(run_dir) / "config.json"
    if not distributed.is_main() or not path.is_file():
        return
    now = distributed.launch_record(getattr(config, "batch_size", None), epoch)
    if previous and previous["world_size"] != now["world_size"]:
        echo(f"resuming on {distributed.launch_text(now)} after epoch {epoch}; the epochs before ran on "
             f"{distributed.launch_text(previous)} (the same global batch; BatchNorm's per-rank batches differ)")
    launches = [dict(e) for e in (previous or {}).get("launches", []) if isinstance(e, dict) and
                isinstance(e.get("epoch"), int) and e["epoch"] < epoch] + [now]
    recorded = json.loads(path.read_text())
    recorded[distributed.LAUNCH_KEY] = {**{k: v for k, v in now.items() if k != "epoch"}, "launches": launches}
    atomic_write_json(path, recorded)


def write_training_start(run_dir: Path, config, network: dict, genotype) -> None:
    """The files a training run writes before its first epoch: config.json, network.json and the genotype."""
    from ..fileio import atomic_write_json
    from ..genotypes import save_genotype

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    atomic_write_json(run_dir / "network.json", network)
    save_genotype(genotype, run_dir)


def save_training_files(run_dir: Path, model_state: dict, state: dict, history: list[dict], improved: bool) -> None:
    """The files of a training epoch: last.pt (the network), best.pt too when it improved, checkpoint.pt
    (everything to resume), metrics.jsonl; each written atomically."""
    from .checkpoint import save_checkpoint

    save_checkpoint(Path(run_dir) / LAST, model_state)
    if improved:
        save_checkpoint(Path(run_dir) / BEST, model_state)
    save_checkpoint(Path(run_dir) / CHECKPOINT, state)
    write_metrics(run_dir, history)


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.jsonl: one JSON line per finished epoch, rewritten atomically with the checkpoint."""
    atomic_write_text(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))


class EpochMeter:
    """Training loss and accuracy of an epoch, summed on the device; `read()` is the only host synchronization,
    which the loops call every `log_every` steps and at the end of the epoch."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.steps = 0
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss
        self.correct += (logits.argmax(1) == labels).sum()
        self.steps += 1
        self.seen += labels.shape[0]

    def read(self) -> tuple[float, float]:
        """(mean loss per step, accuracy) so far; in a distributed run over all ranks (a NaN on one rank is then
        seen by all, which stop together)."""
        if not distributed.active():
            return self.loss_sum.item() / max(self.steps, 1), self.correct.item() / max(self.seen, 1)
        counts = torch.tensor([self.steps, self.seen], dtype=torch.float64, device=self.loss_sum.device)
        total = distributed.all_sum(torch.cat([torch.stack([self.loss_sum.double(), self.correct.double()]), counts]))
        loss, correct, steps, seen = total.tolist()
        return loss / max(steps, 1), correct / max(seen, 1)


def run_epoch_steps(step, batches, steps: int, device: torch.device, label: str, log_every: int, progress: bool,
                    check) -> tuple[float, float]:
    """One epoch of either loop: `step(*inputs) -> (loss, logits)` on each (inputs, labels) of `batches`, at most
    `steps` of them, summed on the device. Losses are read back every `log_every` steps and at the end only;
    `check(mean_loss, step)` sees each read. Returns (mean loss, accuracy)."""
    meter = EpochMeter(device)
    bar = Progress(steps, label, enabled=progress)
    try:
        for i, (inputs, labels) in enumerate(batches, 1):
            loss, logits = step(*inputs)
            meter.add(loss, logits, labels)
            postfix = None
            if i % log_every == 0 or i == steps:  # the only reads from the device
                mean_loss, acc = meter.read()
                check(mean_loss, i)
                postfix = f"loss {mean_loss:.3f} acc {100 * acc:.1f}%"
            bar.update(1, postfix)
            if i == steps:
                break
    finally:
        bar.close()
    return meter.read()


def run_token_steps(step, items, label: str, log_every: int, progress: bool, check, device, weight=None,
                    postfix=lambda mean: f"loss {mean:.3f}") -> float:
    """One epoch of the token runs (text windows, sequence-to-sequence batches): ``step(item) -> mean loss (device
    tensor)`` on each item, weighted by ``weight(item)`` (default 1) and summed on the device. The sum is read back
    every `log_every` steps and at the end only (averaged over the ranks of a distributed run, so that all see a
    NaN on any); `check(mean, step)` sees each read, `postfix(mean)` is the bar's text. Returns the weighted mean."""
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    rows = 0
    bar = Progress(len(items), label, enabled=progress)
    try:
        for i, item in enumerate(items, 1):
            n = 1 if weight is None else weight(item)
            loss_sum += step(item).double() * n
            rows += n
            text = None
            if i % log_every == 0 or i == len(items):
                mean = distributed.all_sum(loss_sum).item() / distributed.world_size() / rows
                check(mean, i)
                text = postfix(mean)
            bar.update(1, text)
    finally:
        bar.close()
    return distributed.all_sum(loss_sum).item() / distributed.world_size() / max(rows, 1)
