"""What every search model shares: the relaxation of its alphas, the Gumbel temperature, Max-W, the weight/alpha
split the strategies use, the loss, and the execution settings that do not change the function."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..errors import DartsNasError
from ..precision import PRECISIONS, autocast, full_precision
from ..relaxation import get_relaxation, max_w

# Ops without weights: a derived cell full of them is DARTS' collapse.
PARAMETER_FREE = frozenset({"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})


class SearchModel(nn.Module):
    """Base of the search models. A subclass builds ``self.net`` (the supernet, whose parameters are the weights)
    and ``self.alphas`` (an ``nn.ParameterDict`` of ``[edges, ops]`` matrices), calls :meth:`init_search`, and
    implements ``forward``, ``genotype`` and ``op_costs``."""

    space = ""

    def init_search(self, relaxation: str, use_max_w: bool) -> None:
        self.relaxation = get_relaxation(relaxation)
        self.use_max_w = use_max_w
        # The Gumbel temperature: a device tensor the run loop fills each epoch (graph-safe), not saved.
        self.register_buffer("temperature", torch.ones(()), persistent=False)
        self.channels_last = False
        self.precision = "fp32"

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
    def op_weights(self) -> dict[str, torch.Tensor]:
        """The op weights of the forward pass: the relaxation of each alpha matrix (a fresh sample for the Gumbel
        relaxations), Max-W weighted when it is on."""
        w = {name: self.relaxation.weights(alpha, self.temperature) for name, alpha in self.alphas.items()}
        return {name: max_w(v) for name, v in w.items()} if self.use_max_w else w

    def probabilities(self) -> dict[str, torch.Tensor]:
        """Deterministic weights per alpha matrix (softmax, or sigmoid for an independent relaxation): what the
        logs show and the derivation ranks."""
        return {name: self.relaxation.probabilities(alpha) for name, alpha in self.alphas.items()}

    def selections(self, weights: dict[str, torch.Tensor]) -> dict[str, list[int]] | None:
        """For a hard relaxation (GDAS), the op each edge evaluates, read back in one transfer per forward (the
        structure of the forward pass depends on it); None for the others."""
        if not self.relaxation.hard:
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
