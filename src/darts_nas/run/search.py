"""The search run loop: data on the device, one strategy step per batch pair, a checkpoint every epoch.

Reproducibility: the model is initialised from `seed`, and every epoch's shuffling and augmentation come from
generators seeded by (seed, epoch), so a run resumed from an epoch checkpoint replays exactly what an
uninterrupted run would have done (on CPU, bit for bit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from ..config import SearchConfig, speed_label
from ..data import DeviceLoader, load_dataset, read_split_file, search_split
from ..errors import DartsNasError
from ..fileio import atomic_write_json
from ..genotypes import save_genotype
from ..spaces import SearchData, get_space
from ..strategies import ArchRegularizer, ArchSchedule, alpha_hessian_eigenvalue, strategy_from_config
from .checkpoint import CHECKPOINT, SEARCH_KIND, load_checkpoint, save_checkpoint
from .common import (NonFiniteLoss, cosine_lr, cosine_power_lr, epoch_generator, epoch_seed, join_ranks, make_sgd,
                     restore_states, run_epoch_steps, set_lr, write_metrics)
from .graphs import CapturedStep, require_cuda_graphs
from .log import format_duration, format_op_weights
from .loop import EpochRun

CHECKPOINT_KIND = SEARCH_KIND


def build_search_model(config: SearchConfig, num_classes: int = 0, in_channels: int = 3, vocab_size: int = 0):
    """The search model of `config.space` for data of that shape, with the config's execution settings."""
    data = SearchData(num_classes=num_classes, in_channels=in_channels, vocab_size=vocab_size)
    return get_space(config.space).from_config(config, data).apply_execution_settings(config)


def search_model_from_checkpoint(path, state: dict | None = None):
    """The search model of a search checkpoint (on the CPU), and the checkpoint itself (`state`: already loaded)."""
    state = state if state is not None else load_checkpoint(path, kind=CHECKPOINT_KIND)
    try:
        model = get_space(state.get("space", "darts-cnn"))(**state["model_hparams"])
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError) as e:
        raise DartsNasError(f"{path}: the checkpoint does not hold a usable search model: "
                            f"{str(e).splitlines()[0]}") from None
    return model, state


def build_optimizers(model, config: SearchConfig):
    """Weights: SGD with momentum and L2 decay (or Adam, --weight-optimizer adam). Alphas: Adam with L2 decay, kept
    apart from the weights.
    With --cuda-graphs both are PyTorch's fused implementations, the SGD learning rate a device tensor and Adam's
    step count on the device: the same updates, with nothing read back to the host."""
    graph_safe = config.cuda_graphs
    if config.weight_optimizer == "adam":  # UNAS trains the supernet's weights with Adam
        w_opt = torch.optim.Adam(model.weight_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        w_opt = make_sgd(model.weight_parameters(), config.lr, config.momentum, config.weight_decay, graph_safe)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=config.arch_lr, betas=(config.arch_beta1, config.arch_beta2),
                             weight_decay=config.arch_weight_decay, fused=graph_safe or None,
                             capturable=graph_safe and model.arch_parameters()[0].device.type == "cuda")
    return w_opt, a_opt


def search_step_fn(model, strategy, w_opt, a_opt, config: SearchConfig, update_alphas: bool = True):
    """step(x_train, y_train, x_val, y_val) -> (training loss, logits), both on the device: the strategy's step at
    the weight optimizer's current learning rate (set_lr), eager or, with --cuda-graphs, replayed from a graph.
    A strategy without a validation batch (single-level) gets step(x_train, y_train): no batch is drawn for it."""
    def step(x_train, y_train, *val):
        loss, logits, _ = strategy.step(model, (x_train, y_train), tuple(val) or None, w_opt, a_opt,
                                        w_opt.param_groups[0]["lr"], config.grad_clip, update_alphas)
        return loss, logits

    return CapturedStep(step) if config.cuda_graphs else step


def hessian_due(epoch: int, epochs: int, every: int) -> bool:
    """Whether epoch `epoch` (0-based) of `epochs` estimates the Hessian eigenvalue: every `every`-th epoch and the
    last one (0: never)."""
    return bool(every) and ((epoch + 1) % every == 0 or epoch + 1 == epochs)


@dataclass
class SearchResult:
    run_dir: Path
    epochs_done: int
    finished: bool
    genotype: object
    history: list


class SearchRun(EpochRun):
    """One search, from a fresh config or from a run directory's checkpoint. The image spaces' run; the text
    spaces' (:class:`darts_nas.run.lm.LMSearchRun`) replaces the data, the epoch and the metrics hooks."""

    nan_hint = "Lower --lr or --arch-lr, or check the data."

    def __init__(self, config: SearchConfig, run_dir, echo=print):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        self.echo = distributed.main_only(echo)
        self.device = join_ranks(config)
        if config.cuda_graphs:
            require_cuda_graphs(self.device)
        self.setup_data()
        torch.manual_seed(config.seed)
        self.model = self.build_model().to(self.device)
        self.w_opt, self.a_opt = build_optimizers(self.model, config)
        self.latency = None
        if config.latency_table:
            from ..strategies.latency import LatencyTable

            self.latency = LatencyTable.load(config.latency_table)
            self.latency.check_model(self.model)
        self.regularizer = ArchRegularizer(config.resource_weight, config.discretization,
                                           config.discretization_weight, self.latency, config.latency_target,
                                           config.latency_weight, config.latency_warmup_steps, config.admm_every)
        self.strategy = strategy_from_config(config, self.regularizer)
        self.schedule = ArchSchedule(config.arch_schedule, config.schedule_freq, config.fisher_ewma,
                                     config.fisher_threshold, config.threshold_factor)
        if self.schedule.needs_fisher:
            self.strategy.grad_observer = self.schedule.observe
        self._weights_step = None
        self.table = None
        if config.nb201_table:
            from ..spaces.nb201_table import NB201Table
            self.table = NB201Table.load(config.nb201_table)
        self._step, self._step_updates_alphas = None, None
        self.epoch = 0
        self.stopped = ""
        self.history: list[dict] = []

    # -- hooks of the image spaces ---------------------------------------------------------------------------
    def setup_data(self) -> None:
        config, echo = self.config, self.echo
        dataset = load_dataset(config.dataset, config.data, train=True, download=config.download,
                               image_size=config.image_size, synthetic_size=config.synthetic_size, seed=config.seed)
        for note in dataset.notes:
            echo(f"note: {note}")
        distributed.check_same({"images": len(dataset), "classes": len(dataset.classes)}, "data")
        # Folders load sorted by class: they are shuffled (seeded) so the in-order split and --limit keep every class.
        self.dataset = dataset = dataset.reduced(config.limit, config.seed, shuffled=config.dataset == "folder")
        if config.split_file:
            train_idx, val_idx = read_split_file(config.split_file, len(dataset))
            echo(f"note: split from {config.split_file}: {len(train_idx)} images for weights, {len(val_idx)} for "
                 "alphas")
        else:
            train_idx, val_idx = search_split(len(dataset), config.train_portion)
        loader_args = dict(batch_size=config.batch_size, device=self.device, augment=True,
                           crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout,
                           sharded=distributed.active())
        self.train_loader = DeviceLoader(dataset, train_idx, **loader_args)
        self.val_loader = DeviceLoader(dataset, val_idx, **loader_args)
        self.steps = min(self.train_loader.steps_per_epoch(), self.val_loader.steps_per_epoch())
        if config.arch_schedule != "every" and self.val_loader.steps_per_epoch():
            self.steps = self.train_loader.steps_per_epoch()  # the alphas' batches cycle (DARTS-PRIME's split)
        if self.steps == 0:
            raise DartsNasError(f"{len(dataset)} images split {len(train_idx)}/{len(val_idx)} give no full batch of "
                                f"{config.batch_size}; lower --batch-size or use more data")

    def build_model(self):
        return build_search_model(self.config, num_classes=len(self.dataset.classes),
                                  in_channels=self.dataset.images.shape[1])

    def data_text(self) -> str:
        return (f"{self.config.dataset} ({len(self.dataset)} images, {len(self.train_loader)} for weights / "
                f"{len(self.val_loader)} for alphas)")

    @staticmethod
    def metrics_text(r: dict) -> str:
        return (f"train loss {r['train_loss']:.4f} acc {100 * r['train_acc']:5.2f}%  val loss {r['val_loss']:.4f} "
                f"acc {100 * r['val_acc']:5.2f}%")

    def validate(self) -> dict:
        val_loss, val_acc = self.evaluate(self.val_loader)
        return {"val_loss": val_loss, "val_acc": val_acc}

    def signal_batches(self, count: int) -> list:
        """Validation batches of the Hessian estimate (this rank's shards of the first `count` global batches)."""
        return self.val_loader.batch_shards(count)

    # -- persistence -----------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"kind": CHECKPOINT_KIND, "version": 1, "epoch": self.epoch, "config": self.config.to_dict(),
                "space": self.model.space, "model_hparams": self.model.hparams, "model": self.model.state_dict(),
                "w_optimizer": self.w_opt.state_dict(), "a_optimizer": self.a_opt.state_dict(),
                "regularizer": self.regularizer.state_dict(), "stopped": self.stopped, "history": self.history,
                "strategy": getattr(self.strategy, "state_dict", dict)(), "schedule": self.schedule.state_dict()}

    def load_state(self, state: dict) -> None:
        restore_states(state, {"model": self.model, "w_optimizer": self.w_opt, "a_optimizer": self.a_opt},
                       "search model")
        self.regularizer.load_state_dict(state.get("regularizer"), self.device)
        self.schedule.load_state_dict(state.get("schedule"), self.device)
        if hasattr(self.strategy, "load_state_dict"):
            self.strategy.load_state_dict(state.get("strategy"))
        self.epoch = int(state["epoch"])
        self.stopped = state.get("stopped", "")
        self.history = list(state["history"])

    def save(self) -> None:
        save_checkpoint(self.run_dir / CHECKPOINT, self.state())
        write_metrics(self.run_dir, self.history)

    def tensorboard_genotype(self):
        return self.model.genotype()

    def replicas(self) -> dict:
        return {"weights and alphas": self.model, "weight optimizer state": self.w_opt,
                "alpha optimizer state": self.a_opt}

    # -- the loop --------------------------------------------------------------------------------------------
    def evaluate(self, loader: DeviceLoader):
        """Loss and accuracy on `loader`'s images without augmentation (BN uses batch statistics, as in search);
        in a distributed run each rank evaluates its part and the sums are reduced: every image counts once."""
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)
        with torch.no_grad():
            for x, y in loader.eval_batches():
                logits = self.model(x)
                sums[0] += torch.nn.functional.cross_entropy(logits, y, reduction="sum").double()
                sums[1] += (logits.argmax(1) == y).sum()
        loss_sum, correct = distributed.all_sum(sums).tolist()
        n = len(loader)
        return loss_sum / n, correct / n

    def step_fn(self, update_alphas: bool):
        """The step function of an epoch: with alpha updates, or the weights only during --arch-warmup-epochs
        (one captured graph at a time)."""
        if self._step_updates_alphas != update_alphas:
            self._step = None  # release the other graph first
            self._step = search_step_fn(self.model, self.strategy, self.w_opt, self.a_opt, self.config, update_alphas)
            self._step_updates_alphas = update_alphas
        return self._step

    def lr(self, epoch: int) -> float:
        c = self.config
        if c.lr_schedule == "constant":
            return c.lr
        if c.lr_schedule == "cosine-power":
            return cosine_power_lr(epoch, c.epochs, c.lr, c.lr_min, c.lr_power, c.lr_warmup_epochs)
        return cosine_lr(epoch + 1 if c.lr_step_before_epoch else epoch, c.epochs, c.lr, c.lr_min)

    def temperature(self, epoch: int) -> float:
        """The Gumbel temperature of an epoch: tau_max at the first, linearly down to tau_min at the last."""
        c = self.config
        return c.tau_max - (c.tau_max - c.tau_min) * epoch / max(c.epochs - 1, 1)

    def start_epoch(self, epoch: int, lr: float) -> bool:
        """What every search epoch starts with: the weights' lr, the Gumbel temperature, the global generator
        reseeded (Gumbel samples, dropout masks) so a resumed run replays them, training mode. Returns whether the
        alphas step this epoch (not during --arch-warmup-epochs)."""
        set_lr(self.w_opt, lr)
        c = self.config
        if c.arch_lr_schedule == "cosine":
            set_lr(self.a_opt, cosine_lr(epoch, c.epochs, c.arch_lr, c.arch_lr_min))
        self.model.set_temperature(self.temperature(epoch))
        torch.manual_seed(epoch_seed(self.config.seed, epoch, 2))
        self.model.train()
        return epoch >= self.config.arch_warmup_epochs

    def speed_text(self) -> str:
        return f" ({speed_label(self.config.to_dict())})"

    def train_epoch(self, epoch: int, lr: float) -> dict:
        c = self.config
        update_alphas = self.start_epoch(epoch, lr)
        step_fn = self.step_fn(update_alphas=update_alphas)
        train_batches = self.train_loader.epoch(epoch_generator(c.seed, epoch, 0, self.device))
        self.schedule.start_epoch()
        if not self.strategy.uses_val_batch:
            batches = ((train_batch, train_batch[1]) for train_batch in train_batches)
        elif self.schedule.every_step:
            batches = (((*train_batch, *val_batch), train_batch[1]) for train_batch, val_batch in
                       zip(train_batches, self.val_loader.epoch(epoch_generator(c.seed, epoch, 1, self.device))))
        else:
            batches = self.scheduled_batches(epoch, train_batches, update_alphas)
            step_fn = self.scheduled_step(step_fn)
        if self.regularizer.needs_progress:
            batches = self.with_progress(epoch, batches)
        loss, acc = run_epoch_steps(step_fn, batches, self.steps, self.device, f"epoch {epoch + 1}/{c.epochs}",
                                    c.log_every, c.progress, lambda loss, step: self.check_finite(loss, epoch, step))
        return {"train_loss": loss, "train_acc": acc,
                **(self.schedule.record() if not self.schedule.every_step else {})}

    def scheduled_batches(self, epoch: int, train_batches, update_alphas: bool):
        """(inputs, labels) per weight step with --arch-schedule: the training batch, plus the next validation
        batch when the schedule takes an alpha step first. The validation batches cycle through reshuffled passes
        (epoch, pass) of the alphas' split."""
        c = self.config

        def val_batches():
            for k in range(1_000_000):
                yield from self.val_loader.epoch(epoch_generator(c.seed, epoch, 1 + 1000 * k, self.device))

        val = val_batches()
        for i, train_batch in enumerate(train_batches):
            if update_alphas and self.schedule.due(i):
                yield (*train_batch, *next(val)), train_batch[1]
            else:
                yield train_batch, train_batch[1]

    def scheduled_step(self, alpha_step_fn):
        """The step of a scheduled epoch: with an alpha step when a validation batch comes, else the weights'."""
        if self._weights_step is None:
            self._weights_step = search_step_fn(self.model, self.strategy, self.w_opt, self.a_opt, self.config,
                                                update_alphas=False)
        weights_step = self._weights_step

        def step(x, y, *val):
            return alpha_step_fn(x, y, *val) if val else weights_step(x, y)
        return step

    def with_progress(self, epoch: int, batches):
        """Sets the proximity ramp t / T before each step: the fraction of the run's steps begun."""
        total = self.config.epochs * self.steps
        for i, item in enumerate(batches):
            self.regularizer.set_progress((epoch * self.steps + i + 1) / total)
            yield item

    def collapse_signals(self, epoch: int, genotype) -> dict:
        """What shows a collapse as it happens: parameter-free ops in the derived cell, the dominant Hessian
        eigenvalue of the validation loss in the alphas (every --hessian-every epochs, and after the last), and with --nb201-table the
        benchmark accuracy of the cell."""
        c = self.config
        free = self.model.parameter_free_ops(genotype)
        out = {} if free is None else {"param_free_ops": free}
        if hessian_due(epoch, c.epochs, c.hessian_every):
            batches = self.signal_batches(c.hessian_batches)
            g = torch.Generator().manual_seed(epoch_seed(c.seed, epoch, 3))
            out["hessian_eigenvalue"] = alpha_hessian_eigenvalue(self.model, batches, c.hessian_iters, generator=g)
        if self.table is not None:
            out["nb201"] = self.table.lookup(genotype)
        if self.latency is not None:
            out.update(self.derived_latency())
        return out

    def derived_latency(self) -> dict:
        """The derived cell's latency on this device (measured as the table measured: its batch and repeats) and
        the surrogate's estimate of it, in ms."""
        from ..strategies.latency import measure

        info = self.latency.info
        weights = self.model.derived_weights()
        inputs = torch.randn(info["input_shape"], device=self.device)
        return {"latency_ms": round(measure(self.model, weights, inputs, info.get("repeats", 10)), 4),
                "latency_estimate_ms": round(float(self.latency.estimate(weights)), 4)}

    def stop_reason(self, signals: dict) -> str:
        c = self.config
        eig = signals.get("hessian_eigenvalue")
        if c.stop_eigenvalue and eig is not None and eig > c.stop_eigenvalue:
            return f"dominant Hessian eigenvalue {eig:.4g} > --stop-eigenvalue {c.stop_eigenvalue:g}"
        if c.stop_param_free and signals.get("param_free_ops", 0) >= c.stop_param_free:
            return (f"{signals['param_free_ops']} parameter-free ops in the derived cell >= --stop-param-free "
                    f"{c.stop_param_free}")
        return ""

    def begin(self) -> None:
        c = self.config
        if distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", c.to_dict())
        n_w, n_a = (sum(p.numel() for p in ps) for ps in (self.model.weight_parameters(),
                                                           self.model.arch_parameters()))
        self.echo(f"search: {c.space} space, {self.strategy.describe()}, {c.relaxation}"
                  f"{' + Max-W' if c.max_w else ''}; {self.data_text()}, {self.device}{self.speed_text()}, "
                  f"{self.steps} steps/epoch, {n_w / 1e6:.2f}M weights, {n_a} alphas{distributed.describe()} -> "
                  f"{self.run_dir}")
        if self.stopped:
            self.echo(f"this search stopped early after epoch {self.epoch}: {self.stopped}")

    def run_epoch(self, epoch: int) -> dict:
        lr = self.lr(epoch)
        t0 = time.perf_counter()
        metrics = self.train_epoch(epoch, lr)
        self.check_finite(metrics["train_loss"], epoch, self.steps)
        distributed.average_buffers(self.model)
        metrics.update(self.validate())
        if not all(torch.isfinite(a).all() for a in self.model.arch_parameters()):
            raise NonFiniteLoss(f"the alphas became NaN or infinite in epoch {epoch + 1}; the search stopped and "
                                f"{self.last_checkpoint()}. Lower --arch-lr.")
        self.regularizer.update(self.model)
        genotype = self.model.genotype()
        t_signals = time.perf_counter()
        signals = self.collapse_signals(epoch, genotype)
        self.signal_seconds = time.perf_counter() - t_signals
        self.last_signals = signals
        self.stopped = self.stop_reason(signals)
        record = {
            "epoch": epoch + 1, "lr": lr, **metrics, "seconds": round(time.perf_counter() - t0, 3),
            "genotype": genotype.to_text(), **signals,
            **self.model.alpha_record(), **({"nb201": signals["nb201"].to_dict()} if "nb201" in signals else {}),
        }
        if self.model.relaxation.stochastic:
            record["temperature"] = self.temperature(epoch)
        if self.stopped:
            record["stopped"] = self.stopped
        return record

    def report(self, record: dict) -> None:
        self.echo(f"epoch {record['epoch']:3d}/{self.config.epochs}  lr {record['lr']:.5f}  "
                  f"{self.metrics_text(record)}  {format_duration(record['seconds'])}")
        self.echo(f"  genotype: {record['genotype']}")
        if "alpha_steps" in record:
            fisher = (f", Fisher information {record['fisher_ewma']:.4g} vs threshold {record['fisher_threshold']:.4g}"
                      if record.get("fisher_ewma") is not None else "")
            self.echo(f"  schedule: {record['alpha_steps']} alpha steps in {self.steps} weight steps{fisher}")
        shown = ([f"{record['param_free_ops']} parameter-free ops"] if "param_free_ops" in record else []) + \
            ([f"Hessian eigenvalue {record['hessian_eigenvalue']:.4g}"] if "hessian_eigenvalue" in record else [])
        if shown:
            self.echo(f"  collapse signals: {', '.join(shown)} ({self.signal_seconds:.1f} s of the epoch's "
                      f"{record['seconds']:.1f} s)")
        if "nb201" in record:
            self.echo(f"  NAS-Bench-201: {self.last_signals['nb201'].to_text()}")
        if "latency_ms" in record:
            target = f" (target {self.config.latency_target:g} ms)" if self.config.latency_weight else ""
            self.echo(f"  latency of the derived cell: measured {record['latency_ms']:.2f} ms, surrogate "
                      f"{record['latency_estimate_ms']:.2f} ms{target}")
        for cell, (columns, w) in self.model.summary_weights().items():
            self.echo(f"  {cell:<6} op weights, mean over edges: {format_op_weights(columns, w)}")
        if self.stopped:
            self.echo(f"stopping early: {self.stopped}")

    def end(self, finished: bool) -> SearchResult:
        genotype = self.model.genotype()
        if finished and distributed.is_main():
            self.write_final(genotype)
        return SearchResult(self.run_dir, self.epoch, finished, genotype, self.history)

    def write_final(self, genotype) -> None:
        atomic_write_json(self.run_dir / "alphas.json", {"primitives": list(self.model.primitives),
                                                         **self.model.alpha_record()})
        save_genotype(genotype, self.run_dir)
