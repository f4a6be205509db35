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

from ..config import SearchConfig, speed_label
from ..data import DeviceLoader, load_dataset, search_split
from ..errors import DartsNasError
from ..fileio import atomic_write_json
from ..genotype import save_genotype
from ..spaces import DartsCNNSearchModel
from ..strategies import Bilevel
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .common import (NonFiniteLoss, check_finite, check_resume, cosine_lr, epoch_generator,
                     last_checkpoint_text, make_sgd, refuse_existing_run, resolve_device,
                     restore_states, run_epoch_steps, set_lr, write_metrics)
from .graphs import CapturedStep, require_cuda_graphs
from .log import format_duration, format_op_weights

CHECKPOINT_KIND = "darts-nas/search"


def build_search_model(config: SearchConfig, num_classes: int, in_channels: int) -> DartsCNNSearchModel:
    model = DartsCNNSearchModel(C=config.channels, num_classes=num_classes, layers=config.layers, steps=config.nodes,
                                multiplier=config.nodes, stem_multiplier=config.stem_multiplier,
                                in_channels=in_channels, partial_channels=config.partial_channels,
                                edge_normalization=config.edge_normalization)
    return apply_speed_settings(model, config)


def apply_speed_settings(model: DartsCNNSearchModel, config: SearchConfig) -> DartsCNNSearchModel:
    """The settings that change how the search model is computed, not what (each tested equal to the default)."""
    return (model.use_channels_last(config.channels_last).use_precision(config.precision)
            .use_fused_ops(config.fuse_ops).use_cell_checkpointing(config.checkpoint_cells))


def search_model_from_checkpoint(path) -> tuple[DartsCNNSearchModel, dict]:
    """The search model of a search checkpoint (on the CPU), and the checkpoint itself."""
    state = load_checkpoint(path, kind=CHECKPOINT_KIND)
    try:
        model = DartsCNNSearchModel(**state["model_hparams"])
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError) as e:
        raise DartsNasError(f"{path}: the checkpoint does not hold a usable search model: "
                            f"{str(e).splitlines()[0]}") from None
    return model, state


def build_optimizers(model, config: SearchConfig):
    """Weights: SGD with momentum and L2 decay. Alphas: Adam with L2 decay, kept apart from the weights.
    With --cuda-graphs both are PyTorch's fused implementations, the SGD learning rate a device tensor and Adam's
    step count on the device: the same updates, with nothing read back to the host."""
    graph_safe = config.cuda_graphs
    w_opt = make_sgd(model.weight_parameters(), config.lr, config.momentum, config.weight_decay, graph_safe)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=config.arch_lr, betas=(config.arch_beta1, config.arch_beta2),
                             weight_decay=config.arch_weight_decay, fused=graph_safe or None,
                             capturable=graph_safe and model.alphas["normal"].device.type == "cuda")
    return w_opt, a_opt


def search_step_fn(model, strategy, w_opt, a_opt, config: SearchConfig, update_alphas: bool = True):
    """step(x_train, y_train, x_val, y_val) -> (training loss, logits), both on the device: the strategy's step at
    the weight optimizer's current learning rate (set_lr), eager or, with --cuda-graphs, replayed from a graph."""
    def step(x_train, y_train, x_val, y_val):
        return strategy.step(model, (x_train, y_train), (x_val, y_val), w_opt, a_opt, w_opt.param_groups[0]["lr"],
                             config.grad_clip, update_alphas)

    return CapturedStep(step) if config.cuda_graphs else step


@dataclass
class SearchResult:
    run_dir: Path
    epochs_done: int
    finished: bool
    genotype: object
    history: list


class SearchRun:
    """One search, from a fresh config or from a run directory's checkpoint."""

    def __init__(self, config: SearchConfig, run_dir, echo=print):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        self.echo = echo
        self.device = resolve_device(config.device)
        if config.cuda_graphs:
            require_cuda_graphs(self.device)

        dataset = load_dataset(config.dataset, config.data, train=True, download=config.download,
                               image_size=config.image_size, synthetic_size=config.synthetic_size, seed=config.seed)
        for note in dataset.notes:
            echo(f"note: {note}")
        # Folders load sorted by class: they are shuffled (seeded) so the in-order split and --limit keep every class.
        self.dataset = dataset = dataset.reduced(config.limit, config.seed, shuffled=config.dataset == "folder")
        train_idx, val_idx = search_split(len(dataset), config.train_portion)
        loader_args = dict(batch_size=config.batch_size, device=self.device, augment=True,
                           crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout)
        self.train_loader = DeviceLoader(dataset, train_idx, **loader_args)
        self.val_loader = DeviceLoader(dataset, val_idx, **loader_args)
        self.steps = min(self.train_loader.steps_per_epoch(), self.val_loader.steps_per_epoch())
        if self.steps == 0:
            raise DartsNasError(f"{len(dataset)} images split {len(train_idx)}/{len(val_idx)} give no full batch of "
                                f"{config.batch_size}; lower --batch-size or use more data")

        torch.manual_seed(config.seed)
        self.model = build_search_model(config, len(dataset.classes), dataset.images.shape[1]).to(self.device)
        self.w_opt, self.a_opt = build_optimizers(self.model, config)
        self.strategy = Bilevel(order=config.order, hvp=config.hvp, r=config.fd_r)
        self._step, self._step_updates_alphas = None, None
        self.epoch = 0
        self.history: list[dict] = []

    # -- persistence -----------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"kind": CHECKPOINT_KIND, "version": 1, "epoch": self.epoch, "config": self.config.to_dict(),
                "model_hparams": self.model.hparams, "model": self.model.state_dict(),
                "w_optimizer": self.w_opt.state_dict(), "a_optimizer": self.a_opt.state_dict(),
                "history": self.history}

    def load_state(self, state: dict) -> None:
        restore_states(state, {"model": self.model, "w_optimizer": self.w_opt, "a_optimizer": self.a_opt},
                       "search model")
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    def save(self) -> None:
        save_checkpoint(self.run_dir / CHECKPOINT, self.state())
        write_metrics(self.run_dir, self.history)

    # -- the loop --------------------------------------------------------------------------------------------
    def evaluate(self, loader: DeviceLoader):
        """Loss and accuracy on `loader`'s images without augmentation (BN uses batch statistics, as in search)."""
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        with torch.no_grad():
            for x, y in loader.eval_batches():
                logits = self.model(x)
                loss_sum += torch.nn.functional.cross_entropy(logits, y, reduction="sum")
                correct += (logits.argmax(1) == y).sum()
        n = len(loader)
        return loss_sum.item() / n, correct.item() / n

    def step_fn(self, update_alphas: bool):
        """The step function of an epoch: with alpha updates, or the weights only during --arch-warmup-epochs
        (one captured graph at a time)."""
        if self._step_updates_alphas != update_alphas:
            self._step = None  # release the other graph first
            self._step = search_step_fn(self.model, self.strategy, self.w_opt, self.a_opt, self.config, update_alphas)
            self._step_updates_alphas = update_alphas
        return self._step

    def train_epoch(self, epoch: int, lr: float) -> tuple[float, float]:
        c = self.config
        set_lr(self.w_opt, lr)
        step_fn = self.step_fn(update_alphas=epoch >= c.arch_warmup_epochs)
        self.model.train()
        batches = (((*train_batch, *val_batch), train_batch[1]) for train_batch, val_batch in
                   zip(self.train_loader.epoch(epoch_generator(c.seed, epoch, 0, self.device)),
                       self.val_loader.epoch(epoch_generator(c.seed, epoch, 1, self.device))))
        return run_epoch_steps(step_fn, batches, self.steps, self.device, f"epoch {epoch + 1}/{c.epochs}",
                               c.log_every, c.progress, lambda loss, step: self._check_finite(loss, epoch, step))

    def _check_finite(self, value: float, epoch: int, step: int) -> None:
        check_finite(value, "training loss", epoch, step, self._last_checkpoint(),
                     "Lower --lr or --arch-lr, or check the data.")

    def _last_checkpoint(self) -> str:
        return last_checkpoint_text(self.run_dir, self.epoch)

    def alpha_lists(self) -> dict:
        """Raw alphas and relaxed op weights as nested lists, for the JSON logs."""
        out = {"alphas": {k: a.detach().cpu().tolist() for k, a in self.model.alphas.items()},
               "op_weights": {k: w.detach().cpu().tolist() for k, w in self.model.op_weights().items()}}
        if len(self.model.betas):
            out["betas"] = {k: b.detach().cpu().tolist() for k, b in self.model.betas.items()}
            out["edge_weights"] = {k: e.detach().cpu().tolist() for k, e in self.model.edge_weights().items()}
        return out

    def run(self, stop_after: int | None = None) -> SearchResult:
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", c.to_dict())
        n_w, n_a = (sum(p.numel() for p in ps) for ps in (self.model.weight_parameters(),
                                                           self.model.arch_parameters()))
        self.echo(f"search: {c.dataset} ({len(self.dataset)} images, {len(self.train_loader)} for weights / "
                  f"{len(self.val_loader)} for alphas), {self.device} ({speed_label(c.to_dict())}), "
                  f"order {c.order}"
                  f"{' (' + c.hvp + ')' if c.order == 2 else ''}, {self.steps} steps/epoch, "
                  f"{n_w / 1e6:.2f}M weights, {n_a} alphas -> {self.run_dir}")
        done_now = 0
        while self.epoch < c.epochs:
            if stop_after is not None and done_now >= stop_after:
                break
            epoch = self.epoch
            lr = cosine_lr(epoch, c.epochs, c.lr, c.lr_min)
            t0 = time.perf_counter()
            train_loss, train_acc = self.train_epoch(epoch, lr)
            self._check_finite(train_loss, epoch, self.steps)
            val_loss, val_acc = self.evaluate(self.val_loader)
            if not all(torch.isfinite(a).all() for a in self.model.arch_parameters()):
                raise NonFiniteLoss(f"the alphas became NaN or infinite in epoch {epoch + 1}; the search stopped and "
                                    f"{self._last_checkpoint()}. Lower --arch-lr.")
            genotype = self.model.genotype()
            record = {
                "epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                "val_loss": val_loss, "val_acc": val_acc, "seconds": round(time.perf_counter() - t0, 3),
                "genotype": genotype.to_text(), **self.alpha_lists(),
            }
            self.history.append(record)
            self.epoch = epoch + 1
            self.save()
            done_now += 1
            self.echo(f"epoch {epoch + 1:3d}/{c.epochs}  lr {lr:.5f}  train loss {train_loss:.4f} acc "
                      f"{100 * train_acc:5.2f}%  val loss {val_loss:.4f} acc {100 * val_acc:5.2f}%  "
                      f"{format_duration(record['seconds'])}")
            self.echo(f"  genotype: {genotype.to_text()}")
            for cell, w in self.model.op_weights().items():
                self.echo(f"  {cell:<6} op weights, mean over edges: {format_op_weights(self.model.primitives, w)}")
        finished = self.epoch >= c.epochs
        genotype = self.model.genotype()
        if finished:
            self.write_final(genotype)
        return SearchResult(self.run_dir, self.epoch, finished, genotype, self.history)

    def write_final(self, genotype) -> None:
        atomic_write_json(self.run_dir / "alphas.json", {"primitives": list(self.model.primitives),
                                                         **self.alpha_lists()})
        save_genotype(genotype, self.run_dir)


def start_search(config: SearchConfig, run_dir, echo=print) -> SearchRun:
    refuse_existing_run(run_dir, "search")
    return SearchRun(config, run_dir, echo)


def resume_search(run_dir, echo=print, **changes) -> SearchRun:
    """Rebuild a search from its run directory and continue from its last epoch checkpoint. `changes` may set only
    common.RESUMABLE_CHANGES: anything else would make the continued run differ from the one recorded."""
    run_dir = Path(run_dir)
    check_resume(run_dir, changes)
    state = load_checkpoint(run_dir, kind=CHECKPOINT_KIND)
    config = SearchConfig.from_dict({**state["config"], **changes})
    run = SearchRun(config, run_dir, echo)
    run.load_state(state)
    return run
