"""The evaluation cell built from a genotype, drop-path, and the auxiliary heads (DARTS, arXiv:1806.09055, section 3.3 and appendix A.2).

The cell reuses the search space's ops (``ops.darts_op(..., search=False)``: affine BN with running statistics, no BN
after pooling), so a genotype means exactly the same ops in search and evaluation.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import CHOKE_CHANNELS, FactorizedReduce, Identity, ReLUConvBN, darts_op, sharp_op

# What a genotype's op names mean (its type's ``op_family``): DARTS' ops or sharpDARTS' SharpSepConv family.
OP_FAMILIES = {"darts": darts_op, "sharp": sharp_op}


def drop_path(x: torch.Tensor, drop_prob) -> torch.Tensor:
    """Zero whole samples of `x` with probability `drop_prob`, scale the rest by 1/keep: E[out] = x.

    One uniform draw per sample (shape [N, 1, 1, 1]) from the default generator of x's device, so a run that
    seeds it per epoch replays exactly. `drop_prob` is a float (0 skips the draw) or a 0-dim tensor, which a
    CUDA graph can read at every replay; a tensor holding 0 keeps every sample and scales by 1, so the value is x.
    """
    if not isinstance(drop_prob, torch.Tensor) and drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    u = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=torch.float32)
    return x * ((u < keep).float() / keep).to(x.dtype)


class EvalCell(nn.Module):
    """One cell of a genotype: two preprocessed inputs, node i = op(state a) + op(state b), output the channel
    concat of the genotype's concat states. Ops reading the two inputs have stride 2 in a reduction cell."""

    def __init__(self, edges, concat, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 make=darts_op):
        super().__init__()
        self.reduction = reduction
        self.channels = (C_prev_prev, C_prev, C)
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        self.ops = nn.ModuleList(make(name, C, 2 if reduction and j < 2 else 1, search=False)
                                 for name, j in edges)
        self.inputs = tuple(j for _, j in edges)
        self.droppable = tuple(not isinstance(op, Identity) for op in self.ops)
        self.concat = tuple(concat)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob=0.0) -> torch.Tensor:
        """`drop_prob`: a float, or a 0-dim tensor (applied in training mode whatever it holds; see drop_path)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        drop = self.training and (isinstance(drop_prob, torch.Tensor) or drop_prob > 0.0)
        for i in range(len(self.ops) // 2):
            node = None
            for k in (2 * i, 2 * i + 1):
                y = self.ops[k](states[self.inputs[k]])
                if drop and self.droppable[k]:
                    y = drop_path(y, drop_prob)
                node = y if node is None else node + y
            states.append(node)
        return torch.cat([states[s] for s in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on the output of cell 2*layers//3 (weighted 0.4 in the loss; not in the papers'
    parameter counts). CIFAR: 8x8 input, 5x5 average pool stride 3 -> 2x2. ImageNet: 7x7 input, stride 2 -> 2x2, and
    no BN after the 768-channel conv, as in the published ImageNet experiments. A 2x2 conv then gives 1x1 x 768.

    Maps too small for the 5x5 pooling to leave at least 2x2 (small inputs) are pooled adaptively to 2x2 instead;
    larger maps are averaged to 1x1 before the classifier. At the papers' sizes both are no-ops."""

    def __init__(self, C: int, num_classes: int, stride: int, bn_after_conv: bool):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=stride, padding=0, count_include_pad=False)
        layers = [nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
                  nn.Conv2d(128, 768, 2, bias=False)]
        if bn_after_conv:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        side = min(x.shape[-2:])
        pooled = (side - 5) // self.pool.stride + 1 if side >= 5 else 0
        x = self.pool(x) if pooled >= 2 else F.adaptive_avg_pool2d(x, 2)
        x = self.features(x)
        if x.shape[-1] != 1 or x.shape[-2] != 1:
            x = F.adaptive_avg_pool2d(x, 1)
        return self.classifier(torch.flatten(x, 1))


class EvalNetwork(nn.Module):
    """What the CIFAR and ImageNet networks share: the cell stack, drop-path, auxiliary head, classifier.

    ``forward(x)`` returns logits; ``forward_with_aux(x)`` returns (logits, auxiliary logits), the latter only in
    training mode with an auxiliary head (else None). ``drop_path_prob`` is set by the training loop each epoch.
    """

    channels_last = False
    _drop_path_prob = 0.0

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        self._drop_path_prob = float(p)
        tensor = getattr(self, "drop_path_tensor", None)
        if tensor is not None:
            tensor.fill_(self._drop_path_prob)  # a kernel launch, no host synchronization

    def use_drop_path_tensor(self, enabled: bool = True) -> "EvalNetwork":
        """Keep the drop-path probability in a 0-dim buffer on the model's device, updated in place when
        ``drop_path_prob`` is set, and apply drop-path on every training step (at 0 it multiplies by 1): what a
        step replayed from a CUDA graph needs, since a Python number would be frozen at capture."""
        if enabled:
            device = next(self.parameters()).device
            self.register_buffer("drop_path_tensor", torch.tensor(self._drop_path_prob, device=device),
                                 persistent=False)
        else:
            self.drop_path_tensor = None
        return self

    @staticmethod
    def train_args(config) -> dict:
        """What the cell networks take from a training configuration: the choke ops' middle width."""
        return {"choke": config.choke_channels}

    def record_choke(self, choke: int) -> None:
        """Keep a choke width other than the default in ``hparams`` (so the networks recorded before it existed
        read as they were)."""
        if choke != CHOKE_CHANNELS:
            self.hparams["choke"] = choke

    def _build_cells(self, genotype, C: int, layers: int, C_prev_prev: int, C_prev: int, reduction_prev: bool,
                     num_classes: int, auxiliary: bool, aux_stride: int, aux_bn: bool,
                     choke: int = CHOKE_CHANNELS) -> int:
        """The cells, auxiliary head and classifier; `choke`: the middle width of sharpDARTS' choke ops."""
        make = OP_FAMILIES[genotype.op_family]
        make = partial(make, choke=choke) if genotype.op_family == "sharp" else make
        C_curr = C
        self.cells = nn.ModuleList()
        self.aux_position = 2 * layers // 3
        C_aux = None
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            edges, concat = (genotype.reduce, genotype.reduce_concat) if reduction else \
                (genotype.normal, genotype.normal_concat)
            cell = EvalCell(edges, concat, C_prev_prev, C_prev, C_curr, reduction, reduction_prev, make)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self.aux_position:
                C_aux = C_prev
        self.auxiliary_head = AuxiliaryHead(C_aux, num_classes, aux_stride, aux_bn) if auxiliary else None
        self.classifier = nn.Linear(C_prev, num_classes)
        return C_prev

    def stem_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        s0, s1 = self.stem_forward(x)
        aux = None
        tensor = getattr(self, "drop_path_tensor", None)
        drop = tensor if tensor is not None else self._drop_path_prob
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(F.adaptive_avg_pool2d(s1, 1), 1))
        return logits, aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]

    def use_channels_last(self, enabled: bool = True) -> "EvalNetwork":
        """NHWC layout for every conv and pool (the same function; inputs are converted in forward)."""
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def channel_trace(self) -> list[tuple[int, int, int]]:
        """(C_prev_prev, C_prev, C) of every cell, in order."""
        return [cell.channels for cell in self.cells]
