"""Settings of a search and of a training run: flat dataclasses of plain values, presets that fill them with a
paper's values, and command-line flags generated from them so that every value can be overridden
(`--batch-size 32`).

The search's class, :class:`SearchConfig`, is assembled from :class:`SearchCore` (what every search reads) and the
settings groups that the registered spaces, data kinds, strategies, relaxations and the search's other parts
declare next to their code (:mod:`darts_nas.settings`): a new method's settings live in its own module."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

import json
from pathlib import Path
from typing import NamedTuple

from .data import DATASETS as IMAGE_DATASETS
from .data.seq2seq import SEQ2SEQ_DATASETS, Seq2SeqSettings
from .data.text import CORPORA as TEXT_DATASETS
from .errors import DartsNasError
from .genotypes.transformer import TransformerArch
from .nets.rnn import LanguageModelSettings
from .nets.transformer import TransformerSettings
from .distributed import LAUNCH_KEY
from .precision import PRECISIONS
from .spaces.relaxation import RELAXATIONS, get_relaxation
# Re-exported for the modules that build their own settings classes on them (rl.config).
from .settings import Settings, SettingsGroup, _f, choices_of, declared_groups, flag as _flag, setting  # noqa: F401
from .spaces import DATA_KINDS, SPACES, get_space
from .strategies import SEARCH_PARTS, STRATEGIES, get_strategy


@dataclass
class SearchCore(Settings):
    """What every search reads: its data, the supernet's size, the weights' and the alphas' optimizers, the
    strategy and relaxation it names, how it executes, and the run."""

    WHAT = "a search"
    POSITIVE = ("channels", "layers", "nodes", "epochs", "batch_size", "log_every")
    GROUPS = ()  # the plug-ins' settings groups, set by assemble_search_config

    # data
    dataset: str = _f("cifar10", "dataset (ptb, wikitext-2, text: word-level corpora for a text space such as "
                      "darts-rnn; copy, reverse, sort, parallel: sequence-to-sequence data for rev-transformer)",
                      IMAGE_DATASETS + TEXT_DATASETS + SEQ2SEQ_DATASETS)
    data: str = _f("./data", "dataset location (CIFAR: batches dir, its parent or the .tar.gz; folder: root/<class>/<image>; "
                   "text corpora: the directory of their train/valid/test files)")
    limit: int = _f(0, "use only the first N training images, or tokens of a corpus (0: all), for reduced runs")
    train_portion: float = _f(0.5, "fraction of the training set that trains the weights; the rest trains the alphas")
    # supernet
    space: str = _f("darts-cnn", "search space", lambda: SPACES)
    channels: int = _f(16, "initial channels C")
    layers: int = _f(8, "cells in the supernet", space_setting=True)
    nodes: int = _f(4, "intermediate nodes per cell", space_setting=True)
    # weights
    epochs: int = _f(50, "search epochs")
    batch_size: int = _f(64, "batch size (weights and alphas); under torchrun the global batch, each rank computing "
                         "batch / world size")
    lr: float = _f(0.025, "weight learning rate at epoch 0 (annealed to --lr-min)")
    lr_min: float = _f(0.001, "weight learning rate at the end")
    lr_schedule: str = _f("cosine", "cosine, cosine-power (sharpDARTS' Cosine Power Annealing), or constant",
                          ("cosine", "cosine-power", "constant"))
    lr_power: float = _f(2.0, "the exponent of --lr-schedule cosine-power (sharpDARTS' scripts: 2; 1 is cosine)")
    lr_warmup_epochs: int = _f(0, "--lr-schedule cosine-power: first epochs ramping linearly up to --lr "
                               "(sharpDARTS' scripts: 5)")
    lr_step_before_epoch: bool = _f(False, "--lr-schedule cosine one epoch ahead: epoch e trains at the cosine's "
                                    "value for e + 1, so the last epoch reaches --lr-min (DARTS-PRIME's loop, which "
                                    "steps its scheduler before each epoch)")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(3e-4, "SGD weight decay")
    grad_clip: float = _f(5.0, "gradient-norm clip of the weights (0: off)")
    weight_optimizer: str = _f("sgd", "the weights' optimizer: sgd (with --momentum; DARTS) or adam (UNAS; first-order "
                               "and single-level searches)", ("sgd", "adam"))
    # alphas
    arch_lr: float = _f(3e-4, "Adam learning rate of the alphas")
    arch_beta1: float = _f(0.5, "Adam beta1 of the alphas")
    arch_beta2: float = _f(0.999, "Adam beta2 of the alphas")
    arch_weight_decay: float = _f(1e-3, "Adam (L2) weight decay of the alphas")
    arch_warmup_epochs: int = _f(0, "first epochs that train the weights only (PC-DARTS: 15)")
    arch_lr_schedule: str = _f("constant", "the alphas' learning rate: constant, or cosine to --arch-lr-min (UNAS)",
                               ("constant", "cosine"))
    arch_lr_min: float = _f(0.0, "the alphas' final learning rate with --arch-lr-schedule cosine")
    # strategy and relaxation (their own settings are their settings groups')
    strategy: str = _f("bilevel", "bilevel (DARTS), single-level (Single-DARTS, SNAS) or implicit (iDARTS)",
                       lambda: STRATEGIES)
    relaxation: str = _f("softmax", "op weights from alphas: softmax (DARTS), sigmoid (independent per op), gumbel "
                         "(SNAS), hard-gumbel (GDAS: one op per edge)", lambda: RELAXATIONS)
    # speed (each computes the same function; docs/benchmarks.md has what they measured)
    channels_last: bool = _f(True, "NHWC layout for convs and pools (faster on CPU)", space_setting=True)
    precision: str = _f("fp32", "fp32, or bf16 autocast (for GPUs)", PRECISIONS)
    cuda_graphs: bool = _f(False, "capture the whole search step in a CUDA graph and replay it (CUDA only)",
                           space_setting=True)
    # run
    seed: int = _f(2, "random seed")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto")
    out: str = _f("", "run directory (default runs/<preset>-<time>)")
    log_every: int = _f(20, "steps between progress updates that read losses back from the device")
    progress: bool = _f(True, "show a progress bar")
    tensorboard: bool = _f(False, "write TensorBoard events to RUN_DIR/tensorboard each epoch: scalars, op weights "
                           "per edge, the cell diagram (needs darts-nas[tensorboard])")


    def validate(self) -> "SearchCore":
        """Every check, one line each: the generic ones, the core's, what the named space, strategy and relaxation
        say, and each settings group's own (a line that two groups both give appears once)."""
        problems = self.generic_problems() + self.core_problems() + self.plugin_problems()
        for group in type(self).GROUPS:
            problems += group.problems(self)
        problems = list(dict.fromkeys(problems))
        if problems:
            raise DartsNasError("; ".join(problems))
        return self

    def search_space(self):
        """The registered class of --space (None for an unknown name, which the choices check reports)."""
        return get_space(self.space) if self.space in SPACES else None

    def search_strategy(self):
        """The registered class of --strategy, or None."""
        return get_strategy(self.strategy) if self.strategy in STRATEGIES else None

    def search_relaxation(self):
        """The registered relaxation of --relaxation, or None."""
        return get_relaxation(self.relaxation) if self.relaxation in RELAXATIONS else None

    def core_problems(self) -> list[str]:
        """The checks of the core's own fields."""
        problems = power_schedule_problems(self)
        if self.lr_step_before_epoch and self.lr_schedule != "cosine":
            problems.append("--lr-step-before-epoch belongs to --lr-schedule cosine")
        if self.arch_lr_min < 0:
            problems.append("--arch-lr-min cannot be negative")
        if not 0.0 < self.train_portion < 1.0:
            problems.append("--train-portion must be between 0 and 1")
        if self.lr <= 0 or self.arch_lr <= 0 or self.lr_min < 0:
            problems.append("learning rates must be positive")
        if min(self.limit, self.grad_clip, self.arch_warmup_epochs) < 0:
            problems.append("--limit, --cutout, --crop-padding, --grad-clip and --arch-warmup-epochs cannot be "
                            "negative")
        return problems

    def plugin_problems(self) -> list[str]:
        """What the registered space, strategy and relaxation that this configuration names say of it."""
        problems = []
        space, strategy, relaxation = self.search_space(), self.search_strategy(), self.search_relaxation()
        if space is not None:
            problems += self.space_setting_problems(space)
            problems += space.config_problems(self)
            problems += text_problems(self, space.data_kind == "text", f"--space {self.space}")
            problems += seq2seq_problems(self, space.data_kind == "seq2seq", f"--space {self.space}")
            if getattr(strategy, "double_backward", lambda c: False)(self):
                problems += space.double_backward_problems(self)
            problems += self.input_size_problems(space)
        if relaxation is not None and strategy is not None:
            problems += strategy.config_problems(self, relaxation)
            if relaxation.hard and self.cuda_graphs:
                problems.append(f"{self.relaxation} picks its ops on the host each step: no --cuda-graphs")
        models_sgd_step = getattr(strategy, "models_sgd_step", None)
        if self.weight_optimizer == "adam" and (self.cuda_graphs or models_sgd_step is not None and
                                                models_sgd_step(self)):
            problems.append("--weight-optimizer adam goes with first-order bilevel or single-level searches without "
                            "--cuda-graphs (the second-order and implicit hypergradients model an SGD step)")
        return problems

    def input_size_problems(self, space) -> list[str]:
        """--image-size must be a side the space's reductions can halve (CIFAR and the sample are 32x32 whatever is
        asked; the folder and synthetic data take the size given)."""
        if space.data_kind != "images" or self.dataset not in ("folder", "synthetic") or self.image_size < 1:
            return []
        multiple = space.input_side_multiple(self)
        if self.image_size % multiple:
            return [f"--image-size: the {self.space} space needs an input side that is a multiple of {multiple} "
                    f"(its reductions halve even maps), got {self.image_size}"]
        return []

    def space_setting_problems(self, space) -> list[str]:
        """The settings only some spaces read must keep their defaults in the others: one line each, naming the
        spaces that read it."""
        problems = []
        for f in fields(self):
            if f.metadata.get("space_setting") and f.name not in space.settings and getattr(self, f.name) != f.default:
                owners = [name for name, cls in SPACES.items() if f.name in cls.settings]
                problems.append(f"--{_flag(f.name)} does not apply to the {self.space} space (it belongs to the "
                                f"{' and '.join(owners)} space{'s' if len(owners) > 1 else ''})")
        return problems


def declared_settings() -> list[type]:
    """The settings groups that the registered plug-ins declare, each once: the data kinds', the spaces', the
    relaxations', the strategies' and those of the search's other parts (penalties, schedule, collapse signals)."""
    data_groups = [group for groups in DATA_KINDS.values() for group in groups]
    return declared_groups([*data_groups, *SPACES.values(), *RELAXATIONS.values(), *STRATEGIES.values(),
                            *SEARCH_PARTS])


def assemble_search_config(groups=None) -> type:
    """The flat SearchConfig dataclass: SearchCore's fields, then those of each settings group (default: the
    declared ones), in that order. Every field has one home: a name declared twice is refused."""
    groups = tuple(declared_settings() if groups is None else groups)
    homes = {f.name: "SearchCore" for f in fields(SearchCore)}
    for group in groups:
        for f in fields(group):
            if f.name in homes:
                raise DartsNasError(f"setting {f.name} is declared by both {homes[f.name]} and {group.__name__}")
            homes[f.name] = group.__name__
    namespace = {"__module__": __name__, "__qualname__": "SearchConfig", "GROUPS": groups,
                 "POSITIVE": SearchCore.POSITIVE + tuple(n for group in groups for n in group.POSITIVE),
                 "__doc__": "The settings of a search: SearchCore's and those its plug-ins declare, flat."}
    return dataclass(type("SearchConfig", (*reversed(groups), SearchCore), namespace))


SearchConfig = assemble_search_config()


def power_schedule_problems(config) -> list[str]:
    """The checks of Cosine Power Annealing's settings, for searches and trainings alike."""
    problems = []
    if config.lr_power < 1:
        problems.append("--lr-power must be at least 1")
    if config.lr_warmup_epochs < 0 or config.lr_warmup_epochs and config.lr_warmup_epochs >= config.epochs - 1:
        problems.append("--lr-warmup-epochs must be 0 or fewer than --epochs - 1")
    if config.lr_warmup_epochs and config.lr_schedule != "cosine-power":
        problems.append("--lr-warmup-epochs belongs to --lr-schedule cosine-power")
    return problems


@dataclass
class TrainConfig(Settings, LanguageModelSettings, Seq2SeqSettings, TransformerSettings):
    """Training an evaluation network from scratch (DARTS, arXiv:1806.09055, section 3.3 and appendix A.2); defaults are the CIFAR-10 recipe."""

    WHAT = "a training"

    # architecture
    genotype: str = _f("DARTS_V2", "the cell: a published name, a search run directory, a genotype file or "
                       "Genotype(...) text (a recurrent one for a language model)")
    network: str = _f("auto", "evaluation network (auto: proxyless for a ProxylessArch, hyperpath for a HyperPath, "
                      "transformer for a TransformerArch or sequence-to-sequence data, rnn for a text corpus, "
                      "imagenet for --dataset imagenet, else cifar)",
                      ("auto", "cifar", "imagenet", "rnn", "proxyless", "hyperpath", "transformer"))
    channels: int = _f(36, "initial channels C")
    layers: int = _f(20, "cells in the network")
    auxiliary: bool = _f(True, "auxiliary head after cell 2*layers//3")
    auxiliary_weight: float = _f(0.4, "weight of the auxiliary loss")
    drop_path_prob: float = _f(0.2, "drop-path probability reached at the end (ramped linearly from 0)")
    choke_channels: int = _f(32, "middle width of sharpDARTS' choke ops (choke_conv_3x3, dil_choke_conv_3x3) in a "
                             "cell network (the authors' search and CIFAR scripts: 32; their ImageNet scripts: 96)")
    # data
    dataset: str = _f("cifar10", "dataset (folder/imagenet: ROOT/train/<class>/* and ROOT/val/<class>/*; ptb, "
                      "wikitext-2, text: word-level corpora for a language model)",
                      IMAGE_DATASETS + ("imagenet",) + TEXT_DATASETS + SEQ2SEQ_DATASETS)
    data: str = _f("./data", "dataset location (CIFAR: batches dir, its parent or the .tar.gz; folder/imagenet: ROOT; "
                   "text corpora: the directory of their train/valid/test files)")
    download: bool = _f(True, "download CIFAR from its official URL (checksum verified) when it is missing")
    image_size: int = _f(32, "input side (folder: images resized to it; imagenet: crop size)")
    synthetic_size: int = _f(1024, "training images in the synthetic dataset")
    limit: int = _f(0, "use only N training images (0: all): the first N of CIFAR, a seeded random N of folders; "
                    "the first N tokens of a corpus")
    test_limit: int = _f(0, "evaluate on N test images only (0: all), chosen as --limit chooses")
    workers: int = _f(4, "decoding processes for --dataset imagenet")
    # language model (--network rnn; the model's fields are LanguageModelSettings', with the evaluation sizes)
    units: int = _f(850, "language model: embedding and hidden size (DARTS: 850 on PTB, 700 on WikiText-2)")
    dropout_e: float = _f(0.1, "language model: embedding (whole-word) dropout")
    nonmono: int = _f(5, "language model: switch SGD to averaged SGD once the validation loss is worse than the best before the "
                      "last N epochs (0: never)")
    eval_batch_size: int = _f(10, "language model: batch size of the validation perplexity")
    # reversible Transformer (--network transformer; its size fields are TransformerSettings')
    beam: int = _f(4, "sequence-to-sequence: beam width of the final BLEU (1: greedy decoding)")
    warmup_steps: int = _f(0, "Transformer: steps of linear learning-rate warm-up (Adam)")
    test_batch_size: int = _f(1, "language model: batch size of the test perplexity")
    # optimization
    epochs: int = _f(600, "training epochs")
    batch_size: int = _f(96, "batch size; under torchrun the global batch (per-rank batch x world size; see "
                         "--scale-lr)")
    lr: float = _f(0.025, "learning rate at epoch 0")
    lr_schedule: str = _f("cosine", "cosine: to --lr-min over the run; exponential: x --lr-decay each epoch; "
                          "constant (language models, until averaged SGD takes over); cosine-power (sharpDARTS' "
                          "Cosine Power Annealing to --lr-min)", ("cosine", "exponential", "constant", "cosine-power"))
    lr_min: float = _f(0.0, "final learning rate of the cosine schedule")
    lr_power: float = _f(2.0, "the exponent of --lr-schedule cosine-power (sharpDARTS' scripts: 2; 1 is cosine)")
    lr_warmup_epochs: int = _f(0, "--lr-schedule cosine-power: first epochs ramping linearly up to --lr "
                               "(sharpDARTS' scripts: 5)")
    lr_decay: float = _f(0.97, "per-epoch factor of the exponential schedule")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(3e-4, "SGD weight decay")
    grad_clip: float = _f(5.0, "gradient-norm clip (0: off)")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy")
    # augmentation
    crop_padding: int = _f(4, "random-crop padding for in-memory datasets (0: no crop)")
    flip: bool = _f(True, "random horizontal flips")
    cutout: int = _f(16, "cutout square side (0: off)")
    color_jitter: float = _f(0.0, "brightness, contrast and saturation jitter strength (imagenet)")
    hue: float = _f(0.0, "hue jitter, fraction of the colour circle (imagenet)")
    # speed
    precision: str = _f("fp32", "fp32, or bf16 autocast (for GPUs)", PRECISIONS)
    channels_last: bool = _f(True, "NHWC layout for convs and pools (same function; 1.45x faster on CPU)")
    cuda_graphs: bool = _f(False, "capture the whole training step in a CUDA graph and replay it (CUDA only)")
    sync_bn: bool = _f(False, "distributed runs on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm) "
                       "instead of each rank's shard")
    # run
    seed: int = _f(0, "random seed")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto")
    out: str = _f("", "run directory (default runs/<preset>-<time>)")
    eval_every: int = _f(1, "evaluate on the test set every N epochs (and after the last)")
    log_every: int = _f(50, "steps between progress updates that read losses back from the device")
    progress: bool = _f(True, "show a progress bar")
    tensorboard: bool = _f(False, "write TensorBoard events to RUN_DIR/tensorboard each epoch (needs "
                           "darts-nas[tensorboard])")

    POSITIVE = ("channels", "layers", "choke_channels", "epochs", "batch_size", "image_size", "synthetic_size", "eval_every",
                "log_every", "units", "bptt", "eval_batch_size", "test_batch_size", "task_size", "task_symbols",
                "subword_vocab", "max_tokens", "d_model", "splits", "blocks", "beam")

    def validate(self) -> "TrainConfig":
        problems = self.generic_problems()
        if self.lr <= 0 or self.lr_min < 0 or not 0 < self.lr_decay <= 1:
            problems.append("--lr must be positive, --lr-min non-negative and --lr-decay in (0, 1]")
        problems += power_schedule_problems(self)
        if not 0.0 <= self.drop_path_prob < 1.0:
            problems.append("--drop-path-prob must be in [0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append("--label-smoothing must be in [0, 1)")
        if min(self.limit, self.test_limit, self.cutout, self.crop_padding, self.workers) < 0 or \
                min(self.grad_clip, self.auxiliary_weight, self.color_jitter, self.hue, self.weight_decay) < 0:
            problems.append("counts, sizes, --grad-clip, --auxiliary-weight, jitter and --weight-decay cannot be "
                            "negative")
        if self.hue > 0.5:
            problems.append("--hue must be at most 0.5")
        kind = self.network_kind()
        reads_text = kind == "rnn" or kind == "transformer" and self.dataset in TEXT_DATASETS
        problems += text_problems(self, reads_text, "a language model (--network rnn, or a decoder-only "
                                  "TransformerArch)")
        problems += seq2seq_problems(self, kind == "transformer" and self.dataset not in TEXT_DATASETS,
                                     "--network transformer")
        if kind == "transformer" and (self.cuda_graphs or self.precision != "fp32" and self.reversible):
            problems.append("the reversible Transformer trains without --cuda-graphs, in fp32 unless --no-reversible")
        if self.network_kind() == "rnn" and (self.cuda_graphs or self.precision != "fp32"):
            problems.append("the language model runs in fp32 without --cuda-graphs (its windows vary in length)")
        if self.network_kind() == "imagenet" and self.channels % 2:
            problems.append("--channels must be even for the ImageNet network (its stem halves C)")
        if self.dataset in ("folder", "imagenet", "synthetic"):  # CIFAR and the sample are 32x32 whatever is asked
            from .nets import check_input_size
            try:
                check_input_size(self.network_kind(), self.image_size)
            except DartsNasError as e:
                problems.append(f"--image-size: {e}")
        if problems:
            raise DartsNasError("; ".join(problems))
        return self

    def network_kind(self) -> str:
        if self.network != "auto":
            return self.network
        if self.dataset in SEQ2SEQ_DATASETS:
            return "transformer"
        if self.dataset in TEXT_DATASETS:
            from .genotypes import TransformerArch, genotype_kind

            return "transformer" if genotype_kind(self.genotype) is TransformerArch else "rnn"
        return "imagenet" if self.dataset == "imagenet" else "cifar"


def text_problems(c, recurrent: bool, what: str) -> list[str]:
    """The checks both settings classes make on a language-model configuration: text data goes with the recurrent
    model and the reverse, and dropout probabilities stay below 1."""
    problems = []
    if recurrent != (c.dataset in TEXT_DATASETS):
        problems.append(f"{what} reads a text corpus (--dataset {', '.join(TEXT_DATASETS)})" if recurrent else
                        f"--dataset {c.dataset} is a text corpus: it needs a language model (search: a text space, "
                        f"--space {' or '.join(n for n, s in SPACES.items() if s.data_kind == 'text')}; train: a "
                        f"recurrent genotype, --network rnn)")
    if recurrent:
        drops = {n: getattr(c, n) for n in ("dropout", "dropout_h", "dropout_x", "dropout_i", "dropout_e")}
        bad = [f"--{_flag(n)}" for n, v in drops.items() if not 0.0 <= v < 1.0]
        if bad:
            problems.append(f"{', '.join(bad)} must be in [0, 1)")
        if min(c.ar, c.tar, c.max_seq_len_delta) < 0:
            problems.append("--ar, --tar and --max-seq-len-delta cannot be negative")
    return problems


def seq2seq_problems(c, seq2seq: bool, what: str) -> list[str]:
    """Sequence-to-sequence data goes with a sequence-to-sequence model and the reverse."""
    if seq2seq != (c.dataset in SEQ2SEQ_DATASETS):
        return [f"{what} reads sequence-to-sequence data (--dataset {', '.join(SEQ2SEQ_DATASETS)})" if seq2seq else
                f"--dataset {c.dataset} is sequence-to-sequence data: it needs an encoder-decoder (search: "
                f"--space {' or '.join(n for n, s in SPACES.items() if s.data_kind == 'seq2seq')}; train: a "
                f"TransformerArch genotype)"]
    return ["--length-buckets cannot be negative"] if c.length_buckets < 0 else []


def speed_label(r: dict) -> str:
    """The speed settings (and PC-DARTS options) in a settings or bench-result dict, e.g. 'bf16 fused graphs';
    'fp32 eager' for the plain setting."""
    parts = [r.get("precision", "fp32")]
    parts += [name for key, name in (("fuse_ops", "fused"), ("checkpoint_cells", "ckpt"), ("cuda_graphs", "graphs"))
              if r.get(key)]
    if r.get("partial_channels", 1) > 1:
        parts.append(f"PC{r['partial_channels']}")
    if r.get("edge_normalization"):
        parts.append("EN")
    if not r.get("channels_last", True):
        parts.append("NCHW")
    return " ".join(parts) if len(parts) > 1 else parts[0] + " eager"


class Preset(NamedTuple):
    """A named starting point: what it is (shown by `darts-nas presets` and at the start of a run) and its values."""

    note: str
    values: dict


_SHARP = dict(dataset="cifar10", epochs=120, lr=0.025, lr_min=1e-4, lr_schedule="cosine-power", lr_power=2.0,
              lr_warmup_epochs=5, max_w=True, cutout=16)
_PRIME = dict(dataset="cifar10", space="darts-prime", relaxation="clamp", discretization_weight=0.1,
              arch_schedule="fisher", schedule_freq=10.0, train_portion=10 / 11, epochs=50, lr_step_before_epoch=True)
_NB201 = dict(dataset="cifar10", space="nb201", channels=16, cells_per_stage=5, epochs=50, batch_size=64, lr=0.025,
              lr_min=0.001, weight_decay=5e-4, arch_lr=3e-4, arch_weight_decay=1e-3)

_PTB = dict(dataset="ptb", space="darts-rnn", nodes=8, units=300, epochs=50, batch_size=256, bptt=35,
            max_seq_len_delta=20, lr=20.0, lr_schedule="constant", momentum=0.0, weight_decay=5e-7, grad_clip=0.25,
            virtual_step_clip=0.25, arch_lr=3e-3, arch_beta1=0.9, arch_beta2=0.999, arch_weight_decay=1e-3,
            dropout=0.75, dropout_h=0.25, dropout_x=0.75, dropout_i=0.2, dropout_e=0.0, tar=1e-3, hessian_every=0,
            seed=3, log_every=10)

_UNAS = dict(strategy="bilevel", order=1, relaxation="gumbel", estimator="unas", tau_max=0.4, tau_min=0.4,
             gen_gap=0.5, weight_optimizer="adam", lr=3e-4, lr_min=1e-4, weight_decay=3e-4, arch_lr=1e-3,
             arch_lr_schedule="cosine", arch_lr_min=3e-4, arch_beta1=0.9, arch_beta2=0.999, arch_weight_decay=1e-6,
             epochs=100, arch_warmup_epochs=15, train_portion=0.9, batch_size=128, latency_warmup_steps=30000)

_REV_TF = dict(space="rev-transformer", strategy="bilevel", order=1, weight_optimizer="adam", weight_decay=0.0,
               grad_clip=1.0, arch_beta1=0.9, arch_weight_decay=1e-3, hessian_every=0, seed=0)

PRESETS: dict[str, Preset] = {
    # DARTS paper, CIFAR-10, first order (arXiv:1806.09055, section 3.1.1 and appendix A.1.1).
    "darts-cifar10": Preset(
        "DARTS first order on CIFAR-10: 50 epochs, batch 64, C=16, 8 cells, 25k/25k split",
        dict(dataset="cifar10", order=1)),
    # The same with the second-order hypergradient (xi = eta) and the paper's finite difference.
    "darts-cifar10-2nd": Preset(
        "DARTS second order (finite-difference Hessian-vector product) on CIFAR-10",
        dict(dataset="cifar10", order=2, hvp="finite-difference")),
    # PC-DARTS (Xu et al., ICLR 2020), CIFAR-10: K=4, edge normalization, batch 256, lr 0.1, arch lr 6e-4, and
    # the alphas frozen for the first 15 of 50 epochs.
    "pc-darts-cifar10": Preset(
        "PC-DARTS on CIFAR-10: 1/4 of the channels per edge, edge normalization, batch 256, "
        "alphas frozen for 15 epochs",
        dict(dataset="cifar10", order=1, partial_channels=4, edge_normalization=True,
                             batch_size=256, lr=0.1, lr_min=0.0, arch_lr=6e-4, arch_warmup_epochs=15)),
    # NAS-Bench-201 (Dong and Yang, arXiv:2001.00326): the common search setting of the benchmark's papers.
    "darts-nb201": Preset(
        "first-order DARTS in the NAS-Bench-201 space (collapses to skip connections in the papers)",
        dict(_NB201, order=1)),
    "darts-nb201-2nd": Preset(
        "second-order DARTS in the NAS-Bench-201 space",
        dict(_NB201, order=2)),
    # Single-DARTS: weights and alphas on the same batch, sigmoid op weights, weight lr 0.005 (its paper's setting).
    "single-darts-nb201": Preset(
        "Single-DARTS in the NAS-Bench-201 space: single-level, sigmoid, lr 0.005",
        dict(_NB201, strategy="single-level", relaxation="sigmoid", lr=0.005)),
    # GDAS: hard Gumbel samples, one op per edge, first-order bilevel; tau 10 -> 0.1 linearly.
    "gdas-nb201": Preset(
        "GDAS in the NAS-Bench-201 space: hard Gumbel, one op per edge, tau 10 -> 0.1",
        dict(_NB201, relaxation="hard-gumbel", order=1, tau_max=10.0, tau_min=0.1)),
    # SNAS: Gumbel-softmax samples, one joint update; tau 1 -> 0.33 (common implementation values, not the paper's).
    "snas-nb201": Preset(
        "SNAS in the NAS-Bench-201 space: Gumbel-softmax, single-level, tau 1 -> 0.33",
        dict(_NB201, strategy="single-level", relaxation="gumbel", tau_max=1.0, tau_min=0.33)),
    # iDARTS: the implicit hypergradient, 2 Neumann terms, exact Hessian-vector products.
    "idarts-nb201": Preset(
        "iDARTS in the NAS-Bench-201 space: implicit hypergradient, 2 Neumann terms",
        dict(_NB201, strategy="implicit", neumann_terms=2, hvp="exact")),
    # Constrained bilevel: independent sigmoid op weights and an ADMM pull toward a discrete cell (rho ours).
    "sigmoid-admm-nb201": Preset(
        "sigmoid op weights with an ADMM discretization penalty in the NAS-Bench-201 space",
        dict(_NB201, relaxation="sigmoid", discretization="admm", discretization_weight=0.1)),
    # sharpDARTS' schedule and regularization on the DARTS CNN space: Cosine Power Annealing and Max-W.
    # sharpDARTS (arXiv:1903.09900), the authors' code and commands (ahundt/sharpDARTS @6f593d4): train_search.py's
    # defaults (8 cells, C=16, SGD 0.025 to 1e-4, momentum 0.9, wd 3e-4, clip 5, train portion 0.5, alphas Adam 3e-4
    # (0.5, 0.999) wd 1e-3), Cosine Power Annealing with the scripts' exponent 2 and 5 warm-up epochs, and the README
    # / genotypes.py search commands: 120 epochs, cutout 16, Max-W; batch 24 (SHARP_DARTS_MAX_W's run), 16
    # (SHARPER_MAX_W's) and 48 (the README's DARTS_PRIMITIVES command). Their AutoAugment is not offered here.
    "sharpdarts-cifar10": Preset(
        "sharpDARTS' 9-op space, Max-W, Cosine Power Annealing (exponent 2, 5 warm-up epochs) 0.025 to 1e-4, "
        "120 epochs, batch 24, cutout",
        dict(_SHARP, space="sharp-darts", batch_size=24)),
    "sharper-cifar10": Preset(
        "sharpDARTS' 12-op 'sharper' space, the same settings with batch 16 (the run that found SHARPER_MAX_W)",
        dict(_SHARP, space="sharper", batch_size=16)),
    "sharpsepconv-cifar10": Preset(
        "DARTS' op names as SharpSepConvs (the README's DARTS_PRIMITIVES search), the same settings, batch 48",
        dict(_SHARP, space="sharpsepconv", batch_size=48)),
    # sharpDARTS' Differentiable Hyperparameter Grid Search (the README's --multi_channel command: batch 64,
    # --init_channels 36, 120 epochs, cutout, seed 10, Max-W; train_search.py's 8 "cells" (4 layers) and 4 widths,
    # 32 to 256 channels, and the schedule and optimizers of the cell searches above).
    "hypercuboid-cifar10": Preset(
        "sharpDARTS' HyperCuboid grid search: widths 32-256, 4 layers, Max-W, Cosine Power Annealing 0.025 to 1e-4, "
        "120 epochs, batch 64, cutout",
        dict(_SHARP, space="hypercuboid", channels=36, layers=8, nodes=4, batch_size=64, seed=10)),
    # DARTS-PRIME (arXiv:2106.11655), its authors' code (k8lion/DARTS-PRIME @4953e40) and README command (--reg prox
    # --schedfreq 10 --dyno_split --dyno_schedule): DARTS' search settings, first order, the proximity regularizer
    # (rho 0.1), the Fisher-information schedule (ewma 0.2, threshold 1, factor 1.05, freq 10) and the split
    # 1 - 1/(1 + 10). The activation is the clamp (their --crb, the paper's independent activation) in the 7-op space
    # with a BatchNorm on each node; the README's command leaves --crb out, so as typed it runs softmax. Their loop
    # (train_scheduled_hard_statebn.py) steps its cosine scheduler before each epoch, so on torch >= 1.1 epoch e
    # trains at the cosine's value for e + 1: 0.0249763 first, 0.001 last (--lr-step-before-epoch).
    "darts-prime-cifar10": Preset(
        "DARTS-PRIME: clamped op weights with pruning, proximity regularizer (rho 0.1), Fisher-information "
        "schedule (about 1 alpha step per 10), split 10/11",
        dict(_PRIME, discretization="proximity")),
    "darts-prime-admm-cifar10": Preset(
        "DARTS-PRIME with the authors' ADMM instead of the proximity term (rho 0.1, z and u every 9 alpha steps, as "
        "their code does with its flag at 10)",
        dict(_PRIME, discretization="admm-prime", admm_every=9)),
    # DARTS recurrent search on Penn Treebank (arXiv:1806.09055, section 3.1.2 and appendix A.1.2): 8 nodes, 300 units, batch
    # 256, BPTT 35, SGD lr 20 without momentum, wd 5e-7, clip 0.25 (also inside the virtual step), alphas Adam 3e-3.
    "darts-ptb": Preset(
        "DARTS recurrent cell search on Penn Treebank, first order: 300 units, batch 256, BPTT 35, lr 20",
        dict(_PTB, order=1)),
    "darts-ptb-2nd": Preset(
        "the same, second order (the paper's cell), the virtual step clipped at 0.25",
        dict(_PTB, order=2)),
    # The published recurrent cell was found with the authors' final code, whose hypergradient departs from the
    # exact one (strategies.bilevel.authors_architecture_gradient): this preset computes theirs.
    "darts-ptb-2nd-authors": Preset(
        "the same with the DARTS authors' recurrent hypergradient (their final code's computation, as the "
        "published cell was searched)",
        dict(_PTB, order=2, hypergradient="authors")),
    # UNAS (arXiv:1912.07651) in its DARTS-style space, CIFAR-10, the authors' settings (their code, NVlabs/unas
    # @cdd19b9): UNAS estimator on Gumbel samples at tau 0.4, generalization-gap objective (0.5), pair penalty 0.2;
    # weights Adam 3e-4 cosine to 1e-4, wd 3e-4; alphas Adam 1e-3 cosine to 3e-4, wd 1e-6; 15 warm-up + 85 search
    # epochs; train portion 0.9; batch 128 (their 32 per GPU x 4). C=16 and 8 cells are DARTS' (not checked there).
    "unas-cifar10": Preset(
        "UNAS on CIFAR-10 in its DARTS-style space: UNAS estimator, generalization gap, pair penalty, Adam, "
        "100 epochs (15 weights only)",
        dict(_UNAS, space="unas-darts", dataset="cifar10", channels=16, layers=8, pair_penalty=0.2)),
    # UNAS in the ProxylessNAS space, ImageNet-style (folder data at 224): stem stride 2, 20 warm-up + 15 search
    # epochs, batch 192 (their 24 per GPU x 8). Latency: add --latency-table and --latency-target (UNAS: 10 ms on
    # its GPUs, weight 0.1, 30,000 warm-up steps, the defaults below).
    "unas-proxyless-imagenet": Preset(
        "UNAS in the ProxylessNAS space on ImageNet-style folders (--data ROOT/<class>/<image>, 224 px): 21 MBConv "
        "layers, 35 epochs (20 weights only)",
        dict(_UNAS, space="proxyless", dataset="folder", image_size=224, stem_stride=2, channels=40,
             epochs=35, arch_warmup_epochs=20, batch_size=192, latency_weight=0.0)),
    # The same space on 32x32 CIFAR-10 (stem stride 1): the epochs of the DARTS-space preset.
    "unas-proxyless-cifar10": Preset(
        "UNAS in the ProxylessNAS space on CIFAR-10 (stem stride 1): 100 epochs (15 weights only)",
        dict(_UNAS, space="proxyless", dataset="cifar10", stem_stride=1, channels=40)),
    # The reversible Transformer DARTS (Zhao et al., arXiv:2105.14669; no code published, sizes unpublished): the
    # sizes below are ours. Weights by Adam (Transformers train poorly with DARTS' SGD), first order.
    "rev-transformer-copy": Preset(
        "reversible Transformer DARTS on the synthetic copy task (--dataset reverse / sort for the others): 2+2 "
        "blocks of 2 splits, d 32, the small op bank, 6 epochs; CPU minutes (ours, not the paper's)",
        dict(_REV_TF, dataset="copy", d_model=32, blocks=2, splits=2, op_bank="small", task_size=2048,
             batch_size=32, epochs=6, lr=3e-3, lr_min=3e-4, arch_lr=3e-3, model_dropout=0.0, log_every=16)),
    "rev-transformer-translation": Preset(
        "reversible Transformer DARTS on a parallel corpus (--data DIR with train/valid/test .src/.tgt): joint "
        "8k sentencepiece, 3+3 blocks of 3 splits, d 256, the Evolved-Transformer op bank, 30 epochs (ours)",
        dict(_REV_TF, dataset="parallel", tokenizer="sentencepiece", subword_vocab=8000, max_tokens=128,
             d_model=256, blocks=3, splits=3, op_bank="evolved", batch_size=64, epochs=30, lr=5e-4, lr_min=5e-5,
             arch_lr=3e-4, model_dropout=0.1)),
    "rev-transformer-lm-ptb": Preset(
        "reversible Transformer DARTS as a decoder-only language model on Penn Treebank: 3 blocks of 2 splits, "
        "d 128, the Evolved-Transformer op bank (no encoder attention), windows of 64 tokens, 10 epochs (ours)",
        dict(_REV_TF, space="rev-transformer-lm", dataset="ptb", d_model=128, blocks=3, splits=2,
             op_bank="evolved", batch_size=32, bptt=64, max_seq_len_delta=0, epochs=10, lr=1e-3, lr_min=1e-4,
             arch_lr=3e-3, model_dropout=0.1)),
    "rev-transformer-lm-wt2": Preset(
        "the same on WikiText-2",
        dict(_REV_TF, space="rev-transformer-lm", dataset="wikitext-2", d_model=128, blocks=3, splits=2,
             op_bank="evolved", batch_size=32, bptt=64, max_seq_len_delta=0, epochs=10, lr=1e-3, lr_min=1e-4,
             arch_lr=3e-3, model_dropout=0.1)),
    # A 2-3 minute CPU demo on the bundled 1,000-image CIFAR-10 sample: NOT the paper's search.
    # The alphas' lr is 33x the paper's so that 36 alpha steps visibly move the op weights, and the Hessian signal
    # is off: one estimate costs more than an epoch of this short run (docs/benchmarks.md).
    "demo": Preset(
        "short CPU demo on 288 images of the bundled CIFAR-10 sample (not the paper's search): about 1.5 minutes, "
        "alphas at 33x the paper's lr so that they move",
        dict(dataset="sample", limit=288, channels=8, layers=5, batch_size=16, epochs=4, order=1, arch_lr=1e-2,
             hessian_every=0, out="runs/demo", log_every=4)),
}


_LM_EVAL = dict(network="rnn", genotype="DARTS_V2", epochs=8000, batch_size=64, bptt=35, max_seq_len_delta=20,
                lr=20.0, lr_schedule="constant", momentum=0.0, grad_clip=0.25, dropout=0.75, dropout_x=0.75,
                dropout_i=0.2, dropout_e=0.1, tar=1e-3, nonmono=5, eval_batch_size=10, test_batch_size=1, seed=1267,
                log_every=50)

_REV_TF_TRAIN = dict(network="transformer", weight_decay=0.0, grad_clip=1.0, lr_schedule="cosine", beam=4, seed=0,
                     cutout=0, crop_padding=0, flip=False, auxiliary=False, drop_path_prob=0.0)
REV_TRANSFORMER_BASELINE_2 = TransformerArch(2, [["attn_4", "ffn"]] * 2, [["attn_4", "enc_attn_4"], ["ffn", "enc_attn_4"]]).to_text()
REV_TRANSFORMER_BASELINE_3 = TransformerArch(3, [["attn_8", "ffn", "attn_8"]] * 3, [["attn_8", "enc_attn_8", "ffn"]] * 3).to_text()
REV_TRANSFORMER_LM_BASELINE = TransformerArch(2, [], [["attn_4", "ffn"]] * 3).to_text()

TRAIN_PRESETS: dict[str, Preset] = {
    # DARTS paper (arXiv:1806.09055) section 3.3: the TrainConfig defaults are this recipe.
    "darts-cifar10-eval": Preset(
        "DARTS CIFAR-10 evaluation: 20 cells, C=36, 600 epochs, batch 96, cutout, drop-path 0.2, "
        "auxiliary 0.4",
        dict(dataset="cifar10")),
    "darts-cifar100-eval": Preset(
        "the same recipe on CIFAR-100",
        dict(dataset="cifar100")),
    # Mobile setting. The published ImageNet recipe uses no drop-path and no cutout.
    "darts-imagenet-eval": Preset(
        "DARTS ImageNet mobile setting: 14 cells, C=48, 250 epochs, batch 128, lr 0.1 x0.97 per "
        "epoch, label smoothing 0.1",
        dict(dataset="imagenet", network="imagenet", image_size=224, channels=48, layers=14,
                                epochs=250, batch_size=128, lr=0.1, lr_schedule="exponential", lr_decay=0.97,
                                weight_decay=3e-5, label_smoothing=0.1, drop_path_prob=0.0, cutout=0,
                                crop_padding=0, color_jitter=0.4, hue=0.2)),
    # DARTS recurrent evaluation (arXiv:1806.09055, section 3.2): SGD lr 20 until the validation loss stalls (non-monotone,
    # 5 epochs), then averaged SGD; the paper trains PTB for 1600+ epochs (test perplexity 56.1 with DARTS_V2).
    "darts-ptb-eval": Preset(
        "DARTS recurrent language model on PTB: 850 units (23M parameters), SGD lr 20 then averaged "
        "SGD, batch 64",
        dict(_LM_EVAL, dataset="ptb", units=850, dropout_h=0.25, weight_decay=8e-7)),
    "darts-wt2-eval": Preset(
        "the same on WikiText-2: 700 units (33M parameters), hidden dropout 0.15, wd 5e-7",
        dict(_LM_EVAL, dataset="wikitext-2", units=700, dropout_h=0.15, weight_decay=5e-7)),
    # UNAS' CIFAR-10 cell in DARTS' CIFAR network, with the authors' CIFAR-10 command (NVlabs/unas @cdd19b9:
    # batch 128, lr 0.05, drop-path 0.2; their 30 linear warm-up epochs of the lr are not offered here).
    # sharpDARTS' evaluation (train.py defaults and README commands: 20 cells, C=36, batch 64, SGD 0.025 to 1e-8 by
    # Cosine Power Annealing, exponent 2, 5 warm-up epochs, cutout 16, auxiliary 0.4, drop-path 0.2, 2000 epochs).
    # Their AutoAugment is not offered here; the paper's figures with it are 1.98% (SHARPSEPCONV_DARTS) and 2.29%
    # (SHARP_DARTS), without it 2.45% / 2.97%.
    "sharpdarts-cifar10-eval": Preset(
        "a sharpDARTS cell (default SHARPSEPCONV_DARTS) in DARTS' CIFAR-10 network: 20 cells, C=36, 2000 epochs, "
        "batch 64, Cosine Power Annealing 0.025 to 1e-8, cutout, drop-path 0.2, auxiliary 0.4",
        dict(dataset="cifar10", genotype="SHARPSEPCONV_DARTS", epochs=2000, batch_size=64, lr=0.025, lr_min=1e-8,
             lr_schedule="cosine-power", lr_power=2.0, lr_warmup_epochs=5)),
    # sharpDARTS' ImageNet training (train_imagenet.py defaults, ahundt/sharpDARTS @6f593d4): DARTS' mobile recipe
    # (14 cells, C=48, 250 epochs, batch 128, lr 0.1 x0.97 per epoch, wd 3e-5, label smoothing 0.1, no drop-path)
    # with the SHARP_DARTS cell and the choke ops' middle width 96 (--mid_channels 96 there and in
    # main_fp16_optimizer.py). Their colour jitter is commented out; their ImageNet AutoAugment is not offered here.
    "sharpdarts-imagenet-eval": Preset(
        "a sharpDARTS cell (default SHARP_DARTS) in DARTS' ImageNet network: 14 cells, C=48, choke width 96, "
        "250 epochs, batch 128, lr 0.1 x0.97 per epoch, label smoothing 0.1",
        dict(dataset="imagenet", network="imagenet", genotype="SHARP_DARTS", choke_channels=96, image_size=224,
             channels=48, layers=14, epochs=250, batch_size=128, lr=0.1, lr_schedule="exponential", lr_decay=0.97,
             weight_decay=3e-5, label_smoothing=0.1, drop_path_prob=0.0, cutout=0, crop_padding=0)),
    "unas-cifar10-eval": Preset(
        "UNAS_CIFAR10 in DARTS' CIFAR-10 network: 20 cells, C=36, 600 epochs, batch 128, lr 0.05, cutout, "
        "drop-path 0.2, auxiliary 0.4",
        dict(dataset="cifar10", genotype="UNAS_CIFAR10", batch_size=128, lr=0.05)),
    # UNAS' ProxylessNAS-space network on ImageNet (the authors' settings: 300 epochs, batch 64, lr 0.025 cosine,
    # wd 5e-5, label smoothing 0.1; their 5 warm-up epochs are not offered here). No auxiliary head, no drop-path.
    "unas-proxyless-imagenet-eval": Preset(
        "UNAS_PROXYLESS (21 MBConv layers, stem 40) on ImageNet: 300 epochs, batch 64, lr 0.025, label "
        "smoothing 0.1",
        dict(dataset="imagenet", genotype="UNAS_PROXYLESS", network="proxyless", image_size=224, channels=40,
             layers=21, auxiliary=False, drop_path_prob=0.0, epochs=300, batch_size=64, lr=0.025,
             weight_decay=5e-5, label_smoothing=0.1, cutout=0, crop_padding=0)),
    # The same network on 32x32 CIFAR-10 (stem stride 1) with DARTS' CIFAR recipe otherwise: our choice, not a
    # published one.
    "unas-proxyless-cifar10-eval": Preset(
        "a ProxylessNAS-space network on CIFAR-10 (stem stride 1, 21 layers, stem 40), DARTS' CIFAR recipe "
        "without auxiliary head and drop-path (ours, not published)",
        dict(dataset="cifar10", genotype="UNAS_PROXYLESS", network="proxyless", channels=40, layers=21,
             auxiliary=False, drop_path_prob=0.0)),
    # A derived reversible Transformer trained from scratch (Adam 0.9/0.98, warm-up, cosine): our recipes. The
    # default genotype of each is the hand-made reversible Transformer (attention and feed-forward functions, the
    # decoder's middle split attending to the encoder), the baseline a search is compared with.
    "rev-transformer-copy-train": Preset(
        "a reversible Transformer (default: the attention + FFN baseline) on the copy task: d 32, 10 epochs, "
        "greedy BLEU each epoch, test BLEU greedy and beam 4 at the end; CPU minutes (ours)",
        dict(_REV_TF_TRAIN, dataset="copy", genotype=REV_TRANSFORMER_BASELINE_2, d_model=32, task_size=2048,
             batch_size=32, epochs=10, lr=3e-3, lr_min=1e-4, warmup_steps=50, model_dropout=0.0, log_every=16)),
    "rev-transformer-translation-train": Preset(
        "a reversible Transformer on a parallel corpus: joint 8k sentencepiece, d 256, 50 epochs, lr 5e-4 with "
        "4000 warm-up steps, label smoothing 0.1, beam 4 (ours)",
        dict(_REV_TF_TRAIN, dataset="parallel", genotype=REV_TRANSFORMER_BASELINE_3, tokenizer="sentencepiece",
             subword_vocab=8000, max_tokens=128, d_model=256, batch_size=64, epochs=50, lr=5e-4, lr_min=1e-5,
             warmup_steps=4000, label_smoothing=0.1, model_dropout=0.1)),
    "rev-transformer-lm-ptb-train": Preset(
        "a decoder-only reversible Transformer language model on Penn Treebank: d 128, windows of 64, 30 epochs, "
        "lr 1e-3 with 200 warm-up steps, dropout 0.2 (ours)",
        dict(_REV_TF_TRAIN, dataset="ptb", genotype=REV_TRANSFORMER_LM_BASELINE, d_model=128, batch_size=32,
             bptt=64, epochs=30, lr=1e-3, lr_min=1e-5, warmup_steps=200, model_dropout=0.2, eval_batch_size=10)),
    # A few CPU minutes on the bundled sample (800 train / 200 test images): NOT the paper's training.
    "eval-demo": Preset(
        "short CPU demo on the bundled CIFAR-10 sample (not the paper's training)",
        dict(dataset="sample", channels=16, layers=8, epochs=3, batch_size=32, out="runs/eval-demo",
                      log_every=5)),
}


def _preset(table: dict, cls, name: str | None, overrides: dict, config_file=None):
    values = {}
    if name is not None and config_file is not None:
        raise DartsNasError("give a preset or a --config file to start from, not both")
    if name is not None:
        if name not in table:
            raise DartsNasError(f"unknown preset {name!r} (known: {', '.join(table)})")
        values.update(table[name].values)
    if config_file is not None:
        values.update(read_config_file(config_file, cls))
    values.update(overrides)
    return cls.from_record(values) if config_file is not None else cls.from_dict(values)


def read_config_file(path, cls) -> dict:
    """The settings of a run's config.json (or any JSON object of settings), to repeat or vary that run. Its run
    directory is not taken over: the new run gets its own unless --out says otherwise."""
    p = Path(path).expanduser()
    try:
        values = json.loads(p.read_text())
    except OSError as e:
        raise DartsNasError(f"--config {p}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise DartsNasError(f"--config {p}: not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise DartsNasError(f"--config {p}: expected a JSON object of settings (a run's config.json)")
    values.pop(LAUNCH_KEY, None)  # how that run was launched, not a setting
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise DartsNasError(f"--config {p}: not {cls.WHAT} config "
                            f"(unknown settings: {', '.join(unknown[:5])})")
    values.pop("out", None)
    return values


def preset_config(name: str | None = None, config_file=None, **overrides) -> SearchConfig:
    return _preset(PRESETS, SearchConfig, name, overrides, config_file)


def train_preset_config(name: str | None = None, config_file=None, **overrides) -> TrainConfig:
    return _preset(TRAIN_PRESETS, TrainConfig, name, overrides, config_file)


def add_config_arguments(parser: argparse.ArgumentParser, cls=SearchConfig) -> None:
    """One flag per setting; its default is None so that only what the user typed overrides the preset."""
    group = parser.add_argument_group("settings (each overrides the preset)")
    lm_fields = {f.name for f in fields(LanguageModelSettings)}
    for f in sorted(fields(cls), key=lambda f: f.name in lm_fields):  # the language model's flags last
        kind = {"int": int, "float": float, "str": str, "bool": bool}[f.type if isinstance(f.type, str) else f.type.__name__]
        flag = f"--{_flag(f.name)}"
        default = f.default
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{f.metadata['help']} (default {default})")
        else:
            choices = choices_of(f)
            group.add_argument(flag, dest=f.name, type=kind, default=None, choices=choices,
                               metavar=f.name.upper() if not choices else None,
                               help=f"{f.metadata['help']} (default {default})")


def overrides_from_args(args: argparse.Namespace, cls=SearchConfig) -> dict:
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
