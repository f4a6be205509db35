"""The image encoders of the RL agents (Miao et al., RL-DARTS, arXiv:2106.02229; Espeholt et al., IMPALA,
arXiv:1802.01561), registered once by name:

- ``impala``: IMPALA-CNN. Per depth (16, 32, 32): conv 3x3, max-pool 3x3 stride 2, two residual blocks
  (relu, conv, relu, conv, plus the input); then flatten, relu, linear to 256, relu;
- ``darts``: the RL-DARTS supernet. Each stage keeps its conv and pool and replaces the two residual blocks by
  two DARTS cells with one input and 4 nodes; every cell shares one set of alphas, weights softmax(tau alpha);
  each node's sum is normalized with batch statistics and no affine parameters (eps 1e-3, as the authors' always
  training-mode, non-trainable BatchNorm); the cell output is the nodes concatenated then a 1x1 conv;
- ``cell``: the same network with the fixed cell of a genotype (:class:`~darts_nas.genotypes.RLCell`).

All read uint8 frames [N, H, W, 3] and give 256 features. Op sets: the authors' (conv 3x3 with bias, relu, tanh,
skip, zero) or DARTS' (its supernet ops at stride 1: affine-free BN with batch statistics, in both the supernet
and the fixed cell, so that a derived cell computes what its supernet edge computed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DartsNasError, registry_lookup
from ..genotypes.rl import RLCell, derive_rl_cell, op_set
from ..ops import rl_op
from ..spaces.mixed import MixedOp

FEATURES = 256


def node_norm(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, training=True, eps=1e-3)


class SearchCell(nn.Module):
    """A single-input DARTS cell whose every edge mixes all ops of the set."""

    def __init__(self, C: int, primitives, nodes: int):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedOp(C, 1, primitives, make=lambda n, c, s: rl_op(n, c))
                                   for i in range(nodes) for _ in range(i + 1))
        self.project = nn.Conv2d(nodes * C, C, 1)

    def forward(self, x, weights):
        states, e = [x], 0
        for i in range(self.nodes):
            s = sum(self.edges[e + j](states[j], weights[e + j]) for j in range(i + 1))
            e += i + 1
            states.append(node_norm(s))
        return self.project(torch.cat(states[1:], 1))


class FixedCell(nn.Module):
    """The cell of a genotype: each node sums its chosen edges."""

    def __init__(self, C: int, genotype: RLCell):
        super().__init__()
        self.inputs = [[j for _, j in node] for node in genotype.nodes]
        self.ops = nn.ModuleList(nn.ModuleList(rl_op(op, C) for op, _ in node) for node in genotype.nodes)
        self.project = nn.Conv2d(len(genotype.nodes) * C, C, 1)

    def forward(self, x):
        states = [x]
        for ops, inputs in zip(self.ops, self.inputs):
            states.append(node_norm(sum(op(states[j]) for op, j in zip(ops, inputs))))
        return self.project(torch.cat(states[1:], 1))


class ResidualBlock(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.conv0 = nn.Conv2d(C, C, 3, padding=1)
        self.conv1 = nn.Conv2d(C, C, 3, padding=1)

    def forward(self, x):
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


def _side(n: int, stages: int) -> int:
    for _ in range(stages):
        n = (n + 1) // 2  # max-pool 3x3, stride 2, padding 1
    return n


class Encoder(nn.Module):
    """What the three encoders share: the stages (conv, pool, two blocks) and the head; subclasses say what a
    block is and how it is called."""

    name = ""
    searchable = False

    def __init__(self, obs_shape, depths):
        super().__init__()
        h, w, c = obs_shape
        depths = tuple(int(d) for d in depths)
        if not depths or min(depths) < 1:
            raise DartsNasError("--depths must be positive channel counts, e.g. 16,32,32")
        self.convs = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for d in depths:
            self.convs.append(nn.Conv2d(c, d, 3, padding=1))
            self.blocks.append(nn.ModuleList([self.block(d), self.block(d)]))
            c = d
        self.linear = nn.Linear(c * _side(h, len(depths)) * _side(w, len(depths)), FEATURES)

    def block(self, C: int) -> nn.Module:
        raise NotImplementedError

    def run_block(self, block, x):
        return block(x)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.permute(0, 3, 1, 2).to(self.convs[0].weight.dtype).div(255.0)
        for conv, blocks in zip(self.convs, self.blocks):
            x = F.max_pool2d(conv(x), 3, stride=2, padding=1)
            for b in blocks:
                x = self.run_block(b, x)
        return torch.relu(self.linear(torch.relu(x.flatten(1))))

    # what the plumbing asks of every encoder
    def arch_parameters(self) -> list[nn.Parameter]:
        return []

    def genotype(self):
        return None

    def alpha_record(self) -> dict:
        return {}


class ImpalaEncoder(Encoder):
    name = "impala"

    def __init__(self, obs_shape, depths=(16, 32, 32), **_):
        super().__init__(obs_shape, depths)

    def block(self, C):
        return ResidualBlock(C)


class DartsEncoder(Encoder):
    """The RL-DARTS supernet encoder; its alphas [edges, |ops|] start at 0."""

    name = "darts"
    searchable = True

    def __init__(self, obs_shape, depths=(16, 32, 32), ops: str = "rl", nodes: int = 4, tau: float = 1.0, **_):
        if nodes < 1:
            raise DartsNasError("--nodes must be positive")
        self.ops, self.primitives, self.nodes, self.tau = ops, op_set(ops), nodes, tau
        super().__init__(obs_shape, depths)
        self.alphas = nn.Parameter(torch.zeros(nodes * (nodes + 1) // 2, len(self.primitives)))

    def block(self, C):
        return SearchCell(C, self.primitives, self.nodes)

    def op_weights(self) -> torch.Tensor:
        return torch.softmax(self.tau * self.alphas, dim=-1)

    def forward(self, obs):
        self._weights = self.op_weights()
        return super().forward(obs)

    def run_block(self, block, x):
        return block(x, self._weights)

    def arch_parameters(self):
        return [self.alphas]

    def edge_names(self) -> list[str]:
        """Each alpha row's edge, "input->0", "0->1", ... (the order of the rows)."""
        return [f"{'input' if j == 0 else j - 1}->{i}" for i in range(self.nodes) for j in range(i + 1)]

    def genotype(self) -> RLCell:
        return derive_rl_cell(self.op_weights().detach().cpu(), self.ops)

    def alpha_entropy(self) -> torch.Tensor:
        """Mean entropy of the edges' op distributions (the authors log it; it falls as edges decide)."""
        p = self.op_weights()
        return -(p * p.clamp_min(1e-12).log()).sum(-1).mean()

    def alpha_record(self) -> dict:
        return {"primitives": list(self.primitives), "alphas": self.alphas.detach().cpu().tolist(),
                "weights": self.op_weights().detach().cpu().tolist()}


class CellEncoder(Encoder):
    """The fixed-cell encoder of a genotype (the derived agent, trained from scratch)."""

    name = "cell"

    def __init__(self, obs_shape, depths=(16, 32, 32), genotype: RLCell | None = None, **_):
        if not isinstance(genotype, RLCell):
            raise DartsNasError("the cell encoder needs an RL-DARTS genotype (--genotype RUN_DIR or RLCell(...))")
        self.cell = genotype
        super().__init__(obs_shape, depths)

    def block(self, C):
        return FixedCell(C, self.cell)

    def genotype(self) -> RLCell:
        return self.cell


ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    if not (isinstance(cls, type) and issubclass(cls, Encoder)) or not cls.name:
        raise DartsNasError(f"register_encoder: {cls!r} is not an Encoder subclass with a name")
    ENCODERS[cls.name] = cls
    return cls


for _cls in (ImpalaEncoder, DartsEncoder, CellEncoder):
    register_encoder(_cls)


def make_encoder(name: str, obs_shape, **kwargs) -> Encoder:
    return registry_lookup(ENCODERS, name, "encoder")(obs_shape, **kwargs)
