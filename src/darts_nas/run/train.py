"""Training an evaluation network from scratch (DARTS, arXiv:1806.09055, section 3.3), and evaluating it.

The loop: per epoch the learning rate (cosine to lr_min, or x decay per epoch) and the drop-path probability
(linear from 0 to drop_path_prob: epoch e uses p * e / epochs) are set; each step minimizes cross-entropy plus
auxiliary_weight times the auxiliary head's, clipped at grad_clip; then the test set is evaluated (top-1, and top-5
for ImageNet). Files: ``checkpoint.pt`` (everything to resume), ``last.pt`` and ``best.pt`` (the network only, best
by test accuracy as the published code selects; report the last for an unbiased figure), ``metrics.jsonl``,
``config.json``, ``network.json`` (parameters and multiply-adds) and the genotype.

Reproducibility: the network is initialised from `seed`; each epoch's shuffling and augmentation come from a
generator seeded by (seed, epoch), and the default generator (drop-path masks) is reseeded per epoch too, so a
run resumed from a checkpoint ends where an uninterrupted one would (on CPU, bit for bit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import distributed
from ..config import TrainConfig, speed_label
from ..data import DeviceLoader, load_dataset
from ..data.dataset import subset_indices
from ..data.folder import list_image_folder
from ..data.stream import IMAGENET_MEAN, IMAGENET_STD, StreamingLoader
from ..errors import DartsNasError
from ..genotypes import Genotype, genotype_from_dict
from ..nets import NETWORK_KINDS, EvalNetwork, load_image_genotype, network_from_hparams, network_kind_for
from ..nets.profile import profile_network
from ..precision import autocast, full_precision
from .checkpoint import CHECKPOINT, LAST, MODEL_KIND, TRAIN_KIND, load_checkpoint, resolve_checkpoint
from .common import (cosine_power_lr, cosine_lr, epoch_generator, epoch_seed, exponential_lr, genotype_label, join_ranks,
                     make_sgd, resolve_device, restore_states, run_epoch_steps, save_training_files, set_lr,
                     write_training_start)
from .graphs import CapturedStep, require_cuda_graphs
from .log import Progress, format_duration
from .loop import EpochRun

CHECKPOINT_KIND = TRAIN_KIND
SAMPLE_TEST = 200  # the bundled sample's last 200 images are its test split


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class TrainData:
    train: object | None   # DeviceLoader or StreamingLoader (None when only evaluating)
    test: object
    classes: list
    in_channels: int
    image_size: int
    mean: tuple
    std: tuple
    name: str
    top5: bool
    notes: list

    def normalization(self) -> dict:
        """What evaluating the trained network later needs to see its inputs exactly as in training."""
        return {"mean": list(self.mean), "std": list(self.std), "classes": list(self.classes)}


def _test_dir(root: Path) -> Path:
    test = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if test is None:
        raise DartsNasError(f"{root}: expected the test images in {root}/val/<class>/<image> (or test/), beside "
                            f"{root}/train/<class>/<image>")
    return test


def _train_dir(root: Path) -> Path:
    if not (root / "train").is_dir():
        raise DartsNasError(f"{root}: expected {root}/train/<class>/<image> and {root}/val/<class>/<image> "
                            f"(or test/) for training from scratch")
    return root / "train"


def _same_classes(train_classes, test_classes, where) -> None:
    if list(train_classes) != list(test_classes):
        only = sorted(set(train_classes) ^ set(test_classes))
        raise DartsNasError(f"{where}: the train and test splits have different class folders "
                            f"({', '.join(only[:5])}{'...' if len(only) > 5 else ''})")


def load_train_data(c: TrainConfig, device, need_train: bool = True, recorded: dict | None = None) -> TrainData:
    """The training loader (augmented per the recipe) and the test loader (no augmentation) for `c.dataset`.

    `recorded` (from a trained network's file: mean, std, classes) makes the test inputs exactly those of training
    without reading the training split again. In a distributed run both loaders are sharded (see
    :class:`~darts_nas.data.DeviceLoader`)."""
    sharded = distributed.active()
    root = Path(c.data).expanduser()
    folders = c.dataset in ("folder", "imagenet")
    if folders:
        train_dir = _train_dir(root) if need_train else None
        test_dir = _test_dir(root)
    if c.dataset == "imagenet":
        files, labels, classes = list_image_folder(test_dir)
        take = subset_indices(len(files), c.test_limit, c.seed, True).tolist() if c.test_limit else range(len(files))
        mean, std = (recorded["mean"], recorded["std"]) if recorded else (IMAGENET_MEAN, IMAGENET_STD)
        test = StreamingLoader([files[i] for i in take], [labels[i] for i in take], c.batch_size, device,
                               image_size=c.image_size, mean=mean, std=std, flip=False, workers=c.workers,
                               sharded=sharded)
        train = None
        if need_train:
            train_files, train_labels, train_classes = list_image_folder(train_dir)
            _same_classes(train_classes, classes, c.data)
            take = subset_indices(len(train_files), c.limit, c.seed, True).tolist()
            train = StreamingLoader([train_files[i] for i in take], [train_labels[i] for i in take], c.batch_size,
                                    device, image_size=c.image_size, mean=mean, std=std, flip=c.flip,
                                    brightness=c.color_jitter, contrast=c.color_jitter, saturation=c.color_jitter,
                                    hue=c.hue, workers=c.workers, sharded=sharded)
        return TrainData(train, test, classes, 3, c.image_size, tuple(mean), tuple(std), "imagenet", True, [])

    train_ds = None
    if c.dataset in ("cifar10", "cifar100", "synthetic"):
        kw = dict(download=c.download, image_size=c.image_size, seed=c.seed)
        test_ds = load_dataset(c.dataset, c.data, train=False, synthetic_size=max(c.synthetic_size // 4, 1), **kw)
        if need_train:
            train_ds = load_dataset(c.dataset, c.data, train=True, synthetic_size=c.synthetic_size, **kw)
    elif c.dataset == "sample":
        sample = load_dataset("sample")
        n = len(sample)
        test_ds = sample.subset(torch.arange(n - SAMPLE_TEST, n))
        if need_train:
            train_ds = sample.subset(torch.arange(n - SAMPLE_TEST))
    elif c.dataset == "folder":
        test_ds = load_dataset("folder", test_dir, image_size=c.image_size)
        if need_train:
            train_ds = load_dataset("folder", train_dir, image_size=c.image_size)
            _same_classes(train_ds.classes, test_ds.classes, c.data)
    else:  # validated earlier; kept for API callers
        raise DartsNasError(f"unknown dataset {c.dataset!r}")
    # Test images are normalized with the training statistics (recorded ones when only evaluating).
    if recorded:
        test_ds.mean, test_ds.std = tuple(recorded["mean"]), tuple(recorded["std"])
    elif train_ds is not None:
        test_ds.mean, test_ds.std = train_ds.mean, train_ds.std
    if c.test_limit:
        test_ds = test_ds.reduced(c.test_limit, c.seed, folders)
    notes = list(test_ds.notes)
    train = None
    if train_ds is not None:
        train_ds = train_ds.reduced(c.limit, c.seed, folders)
        train = DeviceLoader(train_ds, torch.arange(len(train_ds)), c.batch_size, device, augment=True,
                             crop_padding=c.crop_padding, flip=c.flip, cutout=c.cutout, sharded=sharded)
        notes = sorted(set(notes) | set(train_ds.notes))
    test = DeviceLoader(test_ds, torch.arange(len(test_ds)), c.batch_size, device, augment=False, sharded=sharded)
    return TrainData(train, test, list(test_ds.classes), test_ds.images.shape[1], test_ds.images.shape[-1],
                     test_ds.mean, test_ds.std, test_ds.name, False, notes)


# ----------------------------------------------------------------------------------------------------------------
# one step, one evaluation
# ----------------------------------------------------------------------------------------------------------------
def training_loss(model: EvalNetwork, x, y, auxiliary_weight: float, label_smoothing: float):
    """Cross-entropy of the logits plus auxiliary_weight times that of the auxiliary head (training mode)."""
    logits, aux = model.forward_with_aux(x)
    loss = F.cross_entropy(full_precision(logits), y, label_smoothing=label_smoothing)
    if aux is not None and auxiliary_weight > 0:
        loss = loss + auxiliary_weight * F.cross_entropy(full_precision(aux), y, label_smoothing=label_smoothing)
    return loss, logits


def train_step(model, optimizer, x, y, auxiliary_weight=0.4, label_smoothing=0.0, grad_clip=5.0,
               precision="fp32"):
    """One SGD step; returns (loss, logits), both still on the device (nothing is read back here). In a
    distributed run the gradients are averaged over the ranks before clipping."""
    with autocast(x.device, precision):
        loss, logits = training_loss(model, x, y, auxiliary_weight, label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(model.parameters())
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach()


def train_step_fn(model: EvalNetwork, optimizer, c: TrainConfig):
    """step(x, y) -> (loss, logits) at the optimizer's current learning rate (set_lr): eager or, with --cuda-graphs,
    replayed from a graph (the drop-path probability then lives in a device tensor the graph reads)."""
    def step(x, y):
        return train_step(model, optimizer, x, y, c.auxiliary_weight, c.label_smoothing, c.grad_clip, c.precision)

    if not c.cuda_graphs:
        return step
    model.use_drop_path_tensor()
    return CapturedStep(step)


@torch.no_grad()
def evaluate_model(model: EvalNetwork, loader, precision: str = "fp32", progress: bool = False) -> dict:
    """Top-1 and top-5 accuracy and mean cross-entropy over every example of `loader`, in eval mode (a sharded
    loader: each rank its part, the sums reduced, so every image counts exactly once)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss, top-1, top-5, images
    steps = -(-len(loader) // loader.batch_size)
    bar = Progress(steps, "test", enabled=progress)
    try:
        for x, y in loader.eval_batches():
            with autocast(device, precision):
                logits = full_precision(model(x))
            k = min(5, logits.shape[1])
            hits = logits.topk(k, dim=1).indices == y[:, None]
            sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), hits[:, 0].sum().double(),
                                 hits.any(1).sum().double(), torch.tensor(float(y.shape[0]), device=device,
                                                                          dtype=torch.float64)])
            bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    loss_sum, top1, top5, n = distributed.all_sum(sums).tolist()
    if n == 0:
        raise DartsNasError("the test set is empty")
    return {"loss": loss_sum / n, "top1": top1 / n, "top5": top5 / n, "images": int(n)}


# ----------------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    finished: bool
    history: list
    best: dict | None


def sync_batch_norm(model: EvalNetwork, device: torch.device) -> EvalNetwork:
    """--sync-bn: BatchNorm statistics over the global batch (PyTorch's SyncBatchNorm) in a distributed run on
    CUDA; in one process BatchNorm already sees the whole batch, and SyncBatchNorm has no CPU kernels."""
    if not distributed.active():
        return model
    if device.type != "cuda":
        raise DartsNasError("--sync-bn needs CUDA ranks (PyTorch's SyncBatchNorm runs on GPUs only); on CPU each "
                            "rank's BatchNorm uses its own shard's statistics")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def build_network_for(c: TrainConfig, genotype, num_classes: int, in_channels: int) -> EvalNetwork:
    cls = NETWORK_KINDS[network_kind_for(genotype, c.network, c.network_kind())]
    extra = cls.train_args(c) if hasattr(cls, "train_args") else {}  # what a network reads from the settings
    return cls(genotype, C=c.channels, num_classes=num_classes, layers=c.layers, auxiliary=c.auxiliary,
               in_channels=in_channels, **extra)


class TrainRun(EpochRun):
    """One training run of an image network, from a fresh config or from a run directory's checkpoint."""

    def __init__(self, config: TrainConfig, run_dir, echo=print, genotype: Genotype | None = None):
        self.config = c = config.validate()
        self.run_dir = Path(run_dir)
        self.echo = echo = distributed.main_only(echo)
        self.device = join_ranks(c)
        if c.cuda_graphs:
            require_cuda_graphs(self.device)
        self.genotype = genotype if genotype is not None else load_image_genotype(c.genotype)
        self.data = load_train_data(c, self.device)
        for note in self.data.notes:
            echo(f"note: {note}")
        self.steps = self.data.train.steps_per_epoch()
        if self.steps == 0:
            raise DartsNasError(f"{len(self.data.train)} training images give no full batch of {c.batch_size}; "
                                f"lower --batch-size or use more data")
        torch.manual_seed(c.seed)
        model = build_network_for(c, self.genotype, len(self.data.classes), self.data.in_channels)
        if not getattr(model, "has_auxiliary", True) and (c.auxiliary or c.drop_path_prob):
            echo(f"note: the {model.hparams['kind']} network has no auxiliary head and no drop-path; --auxiliary "
                 "and --drop-path-prob do nothing here")
        self.profile = profile_network(model, self.data.image_size)
        if c.sync_bn:
            model = sync_batch_norm(model, self.device)
        self.model = model.use_channels_last(c.channels_last).to(self.device)
        self.optimizer = make_sgd(self.model.parameters(), c.lr, c.momentum, c.weight_decay, c.cuda_graphs)
        self.step_fn = train_step_fn(self.model, self.optimizer, c)
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None

    # -- schedules -------------------------------------------------------------------------------------------
    def lr_at(self, epoch: int) -> float:
        c = self.config
        if c.lr_schedule == "exponential":
            return exponential_lr(epoch, c.lr, c.lr_decay)
        if c.lr_schedule == "cosine-power":
            return cosine_power_lr(epoch, c.epochs, c.lr, c.lr_min, c.lr_power, c.lr_warmup_epochs)
        return cosine_lr(epoch, c.epochs, c.lr, c.lr_min)

    def drop_path_at(self, epoch: int) -> float:
        if not getattr(getattr(self, "model", None), "has_auxiliary", True):  # proxyless, hyperpath: none
            return 0.0
        return self.config.drop_path_prob * epoch / self.config.epochs

    # -- persistence -----------------------------------------------------------------------------------------
    def model_file_state(self, record: dict) -> dict:
        return {"kind": MODEL_KIND, "version": 1, "model_hparams": self.model.hparams,
                "model": self.model.state_dict(), "epoch": self.epoch, "metrics": record,
                "config": self.config.to_dict(), "data": self.data.normalization()}

    def state(self) -> dict:
        return {"kind": CHECKPOINT_KIND, "version": 1, "epoch": self.epoch, "config": self.config.to_dict(),
                "model_hparams": self.model.hparams, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "history": self.history, "best": self.best,
                "data": self.data.normalization()}

    def load_state(self, state: dict) -> None:
        restore_states(state, {"model": self.model, "optimizer": self.optimizer}, "network")
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best = state.get("best")

    def save(self) -> None:
        save_training_files(self.run_dir, self.model_file_state(self.history[-1]), self.state(), self.history,
                            self.improved)

    # -- the loop --------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float]:
        c = self.config
        self.model.train()
        # Drop-path masks: each rank draws its own (rank 0 those of one process).
        torch.manual_seed(epoch_seed(c.seed, epoch, 2 + 100 * distributed.rank()))
        batches = (((x, y), y) for x, y in self.data.train.epoch(epoch_generator(c.seed, epoch, 0, self.device)))
        return run_epoch_steps(self.step_fn, batches, self.steps, self.device, f"epoch {epoch + 1}/{c.epochs}",
                               c.log_every, c.progress, lambda loss, step: self.check_finite(loss, epoch, step))

    def describe(self) -> str:
        c, p, d = self.config, self.profile, self.data
        aux = f" ({p.params_total / 1e6:.2f}M with the auxiliary head)" if p.params_total != p.params else ""
        shape = getattr(self.model, "shape_text", None) or \
            f"C={c.channels} {c.layers} {getattr(self.model, 'depth_unit', 'cells')}"
        return (f"train: {genotype_label(c.genotype)} cell, {type(self.model).__name__} {shape}: "
                f"{p.params / 1e6:.2f}M params{aux}, "
                f"{p.multiply_adds / 1e6:.0f}M multiply-adds; {d.name}: {len(d.train)} train / {len(d.test)} test "
                f"images; {self.device} ({speed_label(c.to_dict())}){distributed.describe()}, {self.steps} "
                f"steps/epoch -> {self.run_dir}")

    def tensorboard_genotype(self):
        return self.genotype if self.epoch == 1 else None  # the cell does not change: once

    def replicas(self) -> dict:
        return {"network": self.model, "optimizer state": self.optimizer}

    def begin(self) -> None:
        if distributed.is_main():
            write_training_start(self.run_dir, self.config,
                                 {"hparams": self.model.hparams, **self.profile.to_dict()}, self.genotype)
        self.echo(self.describe())

    def run_epoch(self, epoch: int) -> dict:
        c = self.config
        lr, drop = self.lr_at(epoch), self.drop_path_at(epoch)
        set_lr(self.optimizer, lr)
        self.model.drop_path_prob = drop
        t0 = time.perf_counter()
        train_loss, train_acc = self.train_epoch(epoch)
        self.check_finite(train_loss, epoch, self.steps)
        distributed.average_buffers(self.model)  # BatchNorm's running statistics: the mean over the ranks
        train_seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "lr": lr, "drop_path_prob": drop, "train_loss": train_loss,
                  "train_acc": train_acc, "train_seconds": round(train_seconds, 3),
                  "images_per_s": round(self.steps * c.batch_size / train_seconds, 2)}
        if (epoch + 1) % c.eval_every == 0 or epoch + 1 == c.epochs:
            test = evaluate_model(self.model, self.data.test, c.precision, progress=c.progress)
            record.update(test_loss=test["loss"], test_acc=test["top1"], test_top5=test["top5"],
                          test_images=test["images"])
        record["seconds"] = round(time.perf_counter() - t0, 3)
        self.improved = "test_acc" in record and (self.best is None or record["test_acc"] > self.best["test_acc"])
        if self.improved:
            self.best = {"epoch": epoch + 1, "test_acc": record["test_acc"]}
        return record

    def report(self, record: dict) -> None:
        self.echo(self.epoch_line(record))

    def end(self, finished: bool) -> TrainResult:
        return TrainResult(self.run_dir, self.epoch, finished, self.history, self.best)

    def epoch_line(self, r: dict) -> str:
        c = self.config
        line = (f"epoch {r['epoch']:3d}/{c.epochs}  lr {r['lr']:.5f}  drop-path {r['drop_path_prob']:.3f}  "
                f"train loss {r['train_loss']:.4f} acc {100 * r['train_acc']:5.2f}%")
        if "test_acc" in r:
            line += f"  test loss {r['test_loss']:.4f} acc {100 * r['test_acc']:5.2f}%"
            if self.data.top5:
                line += f" top-5 {100 * r['test_top5']:5.2f}%"
        return line + f"  {format_duration(r['seconds'])} ({r['images_per_s']:.0f} img/s)"


def resume_image_training(run_dir, state: dict, echo=print, **changes) -> TrainRun:
    """Continue an image network's training run from its loaded checkpoint `state` (dispatch checks and loads it)."""
    config = TrainConfig.from_dict({**state["config"], **changes})
    genotype = genotype_from_dict(state["model_hparams"]["genotype"])
    run = TrainRun(config, run_dir, echo, genotype=genotype)
    run.load_state(state)
    return run


# ----------------------------------------------------------------------------------------------------------------
# loading a trained network
# ----------------------------------------------------------------------------------------------------------------
def load_network(path, genotype=None, map_location="cpu", state: dict | None = None) -> tuple[EvalNetwork, dict]:
    """The trained network in a model file (best.pt / last.pt), a training checkpoint, or a run directory
    (its last.pt). `genotype` rebuilds the weights into another genotype's network (an error if they do not fit).
    `state`: that file, already loaded (it is then not read again)."""
    p = Path(path)
    if p.is_dir():
        p = p / LAST if (p / LAST).is_file() else p / CHECKPOINT
    p = resolve_checkpoint(p)
    state = state if state is not None else load_checkpoint(p, map_location=map_location)
    if state["kind"] not in (MODEL_KIND, CHECKPOINT_KIND):
        raise DartsNasError(f"{p} holds a {state['kind']!r} checkpoint, not a trained network (give a train run's "
                            f"last.pt, best.pt or checkpoint.pt)")
    hparams = dict(state["model_hparams"])
    if genotype is not None:
        hparams["genotype"] = load_image_genotype(genotype).to_dict()
    model = network_from_hparams(hparams)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)[:300] or str(e)[:300]
        raise DartsNasError(f"{p}: the weights do not fit the network of this genotype ({detail})") from None
    return model, state


def evaluate_checkpoint(path, device="auto", data=None, dataset=None, batch_size=None, genotype=None,
                        test_limit=None, progress=True, echo=print, state: dict | None = None) -> dict:
    """Test accuracy of a trained network on the test split of the dataset it was trained on (or another path).
    `state`: the file load_network reads, already loaded."""
    model, state = load_network(path, genotype, state=state)
    config = TrainConfig.from_dict(state["config"])
    overrides = {k: v for k, v in dict(data=data, dataset=dataset, batch_size=batch_size, test_limit=test_limit,
                                       device=device).items() if v is not None}
    config = TrainConfig.from_dict({**config.to_dict(), **overrides}).validate()
    dev = resolve_device(config.device)
    recorded = state.get("data")
    same_data = recorded is not None and config.dataset == state["config"]["dataset"]
    test_data = load_train_data(config, dev, need_train=False, recorded=recorded if same_data else None)
    for note in test_data.notes:
        echo(f"note: {note}")
    if len(test_data.classes) != model.hparams["num_classes"]:
        raise DartsNasError(f"the network has {model.hparams['num_classes']} classes but {config.dataset} at "
                            f"{config.data} has {len(test_data.classes)}")
    if same_data and list(test_data.classes) != list(recorded["classes"]):
        raise DartsNasError(f"the test classes at {config.data} are not the ones the network was trained on "
                            f"({', '.join(recorded['classes'][:5])}...)")
    model.to(dev)
    result = evaluate_model(model, test_data.test, config.precision, progress=progress)
    result.update(epoch=state["epoch"], dataset=config.dataset)
    return result
