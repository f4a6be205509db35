"""What every search space shares: the class a space implements (its settings, construction from a config, its
genotype type and derivation, its alpha tables, its op costs) and what every search model does the same way (the
relaxation of its alphas, the Gumbel temperature, Max-W, the weight/alpha split the strategies use, the loss, and
the execution settings that do not change the function).

A new space is one subclass of :class:`SearchModel` in its own module, registered once with
:func:`darts_nas.spaces.register_space`; the config, the run loop and the command line ask it, never its name."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..errors import DartsNasError
from ..precision import PRECISIONS, autocast, full_precision
from .relaxation import get_relaxation, max_w
from ..settings import SettingsGroup, setting


@dataclass(frozen=True)
class SearchData:
    """What a space needs to know of the data to build its supernet: image classes and channels, or a corpus'
    vocabulary size."""

    num_classes: int = 0
    in_channels: int = 3
    vocab_size: int = 0


@dataclass
class MaxWSettings(SettingsGroup):
    """sharpDARTS' Max-W, which every space applies to its op weights (:meth:`SearchModel.op_weights`)."""

    max_w: bool = setting(False, "sharpDARTS Max-W: weight each op by w + 1 - max(w) of its edge")


class SearchModel(nn.Module):
    """Base of the search spaces. A subclass builds ``self.net`` (the supernet, whose parameters are the weights),
    ``self.alphas`` (an ``nn.ParameterDict`` of ``[edges, ops]`` matrices), ``self.primitives`` and
    ``self.hparams`` (its constructor's keyword arguments: checkpoints rebuild it from them), calls
    :meth:`init_search`, and implements ``forward``, :meth:`from_config`, :meth:`genotype` and, when a resource
    penalty makes sense, :meth:`op_costs`. The class attributes and classmethods below are what the plumbing asks.
    """

    space = ""               # the registry name (--space)
    data_kind = "images"     # the run that feeds it: "images" (batches (x, y)) or "text" (tokens, targets, hidden)
    genotype_type = None     # the genotypes type it derives (darts_nas.genotypes)
    # The space-specific settings of SearchConfig (fields marked ``space_setting``) this space reads; the others
    # must keep their defaults, and the config says so in one line.
    settings: frozenset = frozenset()
    # The settings groups (darts_nas.settings.SettingsGroup dataclasses) this class brings to SearchConfig; a
    # subclass adds its own to those of its bases.
    settings_groups: tuple = (MaxWSettings,)
    # Whether its loss is a mean over independent examples (example_losses): what UNAS' generalization-gap
    # objective pairs. A text space's windows of a token stream are not.
    per_example_losses = True

    # -- what the plumbing asks of a space ----------------------------------------------------------------------
    @classmethod
    def config_problems(cls, config) -> list[str]:
        """Rules on a SearchConfig that belong to this space (beyond which settings it reads)."""
        return []

    @classmethod
    def input_side_multiple(cls, config) -> int:
        """The input sides this space takes under `config` are the multiples of this number: each reduction that
        halves a map (and must meet its shortcut at the same size) needs an even one. 1: any side."""
        return 1

    @classmethod
    def double_backward_problems(cls, config) -> list[str]:
        """Why this space cannot be differentiated twice under `config` (asked when the strategy's hypergradient
        takes exact Hessian-vector products by double backward); empty when it can."""
        return []

    @classmethod
    def from_config(cls, config, data: SearchData) -> "SearchModel":  # pragma: no cover - abstract
        """The search model a SearchConfig describes, for `data`."""
        raise NotImplementedError

    def apply_execution_settings(self, config) -> "SearchModel":
        """The settings that change how the model computes, never what (each tested equal to the plain code)."""
        return self.use_channels_last(config.channels_last).use_precision(config.precision)

    def alpha_table(self) -> str:
        """The derivation weights of every edge, one row per edge, for `derive --alphas`."""
        lines = []
        for name, w in self.derivation_weights().items():
            lines.append(f"{name}:")
            lines += [f"  edge {e}: " + "  ".join(f"{p} {v:.3f}" for p, v in zip(self.primitives, row))
                      for e, row in enumerate(w.tolist())]
        return "\n".join(lines)

    def alpha_record(self) -> dict:
        """Raw alphas and their deterministic op weights as nested lists, for metrics.jsonl and alphas.json, with
        the names of their columns (ops) and rows (edges), which the plots read."""
        return {"alphas": {k: a.detach().cpu().tolist() for k, a in self.alphas.items()},
                "op_weights": {k: w.detach().cpu().tolist() for k, w in self.probabilities().items()},
                "primitives": list(self.primitives), "edges": self.edge_names(), "columns": self.columns()}

    def edge_names(self) -> dict[str, list[str]]:
        """A name per row of each alpha matrix ("from->to" where the space knows its edges)."""
        return {k: [f"edge {e}" for e in range(a.shape[0])] for k, a in self.alphas.items()}

    def columns(self) -> dict[str, list[str]]:
        """A name per column of each alpha matrix: the candidate ops, unless the space's matrices choose other
        things (UNAS' cell chooses inputs too)."""
        return {k: list(self.primitives) for k in self.alphas}

    def summary_weights(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        """What the epoch log summarizes (one line each, the mean over rows): (column names, weights) per alpha
        matrix; a space whose matrices are many may show fewer."""
        columns = self.columns()
        return {k: (columns[k], w) for k, w in self.probabilities().items()}

    def twice_differentiable(self):
        """A context inside which the loss can be differentiated twice (the Hessian eigenvalue's double backward);
        a space whose backward is not (the reversible Transformer's reconstruction) computes plainly inside."""
        return contextlib.nullcontext()

    def arch_penalty(self) -> torch.Tensor | None:
        """A term of the space's own that the alphas' objective adds in every strategy (UNAS' pair penalty);
        None for most spaces."""
        return None

    @torch.no_grad()
    def derivation_weights(self) -> dict[str, torch.Tensor]:
        """The weights the derivation ranks: the relaxation's deterministic ones."""
        return self.probabilities()

    @torch.no_grad()
    def derived_weights(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The derived architecture as one-hot op weights per alpha matrix (what the latency of the derived cell is
        measured and estimated at, and what DARTS-PRIME's regularizers pull toward): here the strongest op of each
        row; a space whose derivation drops edges overrides it. `weights` derives from other op weights than the
        current ones."""
        weights = self.derivation_weights() if weights is None else weights
        return {name: torch.nn.functional.one_hot(w.argmax(-1), w.shape[-1]).to(w.dtype)
                for name, w in weights.items()}

    def derivation_text(self) -> str:
        """How the derivation chose (printed by `darts-nas derive`); empty where the genotype says it all."""
        return ""

    def genotype(self):  # pragma: no cover - abstract
        """The discrete architecture read off the current alphas (an instance of ``genotype_type``)."""
        raise NotImplementedError

    @staticmethod
    def parameter_free_ops(genotype) -> int | None:
        """How many of the genotype's ops have no weights (DARTS' collapse signal); None where it does not apply."""
        return None

    def init_search(self, relaxation: str, use_max_w: bool) -> None:
        self.relaxation = get_relaxation(relaxation)
        self.use_max_w = use_max_w
        if self.relaxation.init is not None:  # the relaxation fixes the alphas' start (DARTS-PRIME's clamp)
            with torch.no_grad():
                for alpha in self.alphas.values():
                    alpha.copy_(self.relaxation.init(alpha.shape))
        if self.relaxation.pruning:
            # 1: the op is alive; 0: pruned for good. Buffers, so checkpoints keep them and resume continues them.
            for name, alpha in self.alphas.items():
                self.register_buffer(f"alive_{name}", torch.ones_like(alpha))
            self.prune()
        # The Gumbel temperature: a device tensor the run loop fills each epoch (graph-safe), not saved.
        self.register_buffer("temperature", torch.ones(()), persistent=False)
        self.channels_last = False
        self.precision = "fp32"

    @torch.no_grad()
    def prune(self) -> None:
        """DARTS-PRIME's pruning, after every alpha step: an alpha at or below 0 is set to 0 and its op masked
        for good (a masked alpha stays 0 whatever its gradient). Nothing for other relaxations."""
        if not self.relaxation.pruning:
            return
        for name, alpha in self.alphas.items():
            alive = getattr(self, f"alive_{name}")
            alive.mul_((alpha > 0).to(alive.dtype))
            alpha.mul_(alive)

    def alive_masks(self) -> dict[str, torch.Tensor] | None:
        """The pruning masks (1 alive, 0 pruned) per alpha matrix, or None without pruning."""
        if not self.relaxation.pruning:
            return None
        return {name: getattr(self, f"alive_{name}") for name in self.alphas}

    # -- execution settings: the same function, computed differently ---------------------------------------------
    def use_channels_last(self, enabled: bool = True):
        """Run convolutions and pooling in NHWC layout: the same function, and on CPU the depthwise/dilated convs
        and pools are 2-5x faster (docs/benchmarks.md). Inputs are converted in forward."""
        self.channels_last = enabled
        self.net.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def use_precision(self, precision: str):
        """fp32, or bf16 autocast for every forward of :meth:`loss` (the loss itself in fp32)."""
        if precision not in PRECISIONS:
            raise DartsNasError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
        self.precision = precision
        return self

    def set_temperature(self, tau: float) -> None:
        self.temperature.fill_(tau)

    # -- the two parameter sets -------------------------------------------------------------------------------
    def named_weight_parameters(self) -> dict[str, nn.Parameter]:
        return {f"net.{name}": p for name, p in self.net.named_parameters()}

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    # -- the function -----------------------------------------------------------------------------------------
    _fixed_weights = None   # set inside fixed_op_weights()
    _fixed_hard = False

    @contextlib.contextmanager
    def fixed_op_weights(self, weights: dict[str, torch.Tensor], hard: bool = False):
        """Inside, every forward uses these op weights (one per alpha matrix) instead of the relaxation's: a
        discrete architecture (one-hot rows, ``hard=True``: only the chosen op of each edge runs) or a given
        relaxed sample. What the score-function estimators (darts_nas.strategies.estimators) evaluate."""
        saved = self._fixed_weights, self._fixed_hard
        self._fixed_weights, self._fixed_hard = dict(weights), hard
        try:
            yield self
        finally:
            self._fixed_weights, self._fixed_hard = saved

    def op_weights(self) -> dict[str, torch.Tensor]:
        """The op weights of the forward pass: the relaxation of each alpha matrix (a fresh sample for the Gumbel
        relaxations), Max-W weighted when it is on; or the weights fixed by :meth:`fixed_op_weights`."""
        if self._fixed_weights is not None:
            return self._fixed_weights
        w = {name: self.relaxation.weights(alpha, self.temperature) for name, alpha in self.alphas.items()}
        return {name: max_w(v) for name, v in w.items()} if self.use_max_w else w

    def probabilities(self) -> dict[str, torch.Tensor]:
        """Deterministic weights per alpha matrix (softmax, or sigmoid for an independent relaxation): what the
        logs show and the derivation ranks."""
        return {name: self.relaxation.probabilities(alpha) for name, alpha in self.alphas.items()}

    def selections(self, weights: dict[str, torch.Tensor]) -> dict[str, list[int]] | None:
        """For a hard relaxation (GDAS), the op each edge evaluates, read back in one transfer per forward (the
        structure of the forward pass depends on it); None for the others."""
        if not (self._fixed_hard if self._fixed_weights is not None else self.relaxation.hard):
            return None
        names = list(weights)
        chosen = torch.cat([weights[n].detach().argmax(-1) for n in names]).tolist()
        out, offset = {}, 0
        for n in names:
            out[n] = chosen[offset: offset + weights[n].shape[0]]
            offset += weights[n].shape[0]
        return out

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loss(self, batch, weights: dict[str, torch.Tensor] | None = None):
        """Cross-entropy of the supernet on `batch`; `weights` evaluates it at other network weights (w', w +- r v)
        functionally."""
        x, y = batch
        with autocast(x.device, self.precision):
            logits = self(x) if weights is None else functional_call(self, weights, (x,), strict=False)
        return F.cross_entropy(full_precision(logits), y), logits

    def example_losses(self, batch, weights: dict[str, torch.Tensor] | None = None):
        """(cross-entropy of each example, output): the per-example losses UNAS' generalization gap pairs."""
        x, y = batch
        with autocast(x.device, self.precision):
            logits = self(x) if weights is None else functional_call(self, weights, (x,), strict=False)
        return F.cross_entropy(full_precision(logits), y, reduction="none"), logits

    def training_loss(self, batch):
        """(loss, objective, output) of the weights' step: the objective adds what regularizes the weights only
        (the recurrent space's activation penalties); here it is the loss itself."""
        loss, out = self.loss(batch)
        return loss, loss, out

    def op_costs(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        """Per alpha matrix, ``[edges, ops]``: the parameter count (millions) of each candidate op on each edge,
        the resource of SNAS' penalty."""
        raise NotImplementedError


def parameter_count_millions(module: nn.Module | None) -> float:
    return 0.0 if module is None else sum(p.numel() for p in module.parameters()) / 1e6
