"""A search space that exists only in the test suite: one mixed edge (none / skip / 3x3 conv) between a stem and a
classifier. It touches nothing in darts_nas: it subclasses SearchModel, brings its own genotype type, and the test
registers it. If the config, the run loop or the command line switched on space names, it would not run."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from darts_nas.spaces import SearchModel
from darts_nas.spaces.mixed import MixedOp

TOY_PRIMITIVES = ("none", "skip_connect", "nor_conv_3x3")


def toy_op(name: str, C: int, stride: int) -> nn.Module:
    """A candidate op; MixedOp asks each whether it opens with a ReLU it could share (none here do)."""
    op = nn.Identity() if name == "skip_connect" else nn.Sequential(
        nn.Conv2d(C, C, 3, padding=1, bias=False), nn.BatchNorm2d(C, affine=False, track_running_stats=False))
    op.starts_with_relu = False
    return op


@dataclass(frozen=True)
class ToyArch:
    """The toy space's genotype: one op per edge."""

    ops: tuple

    space = "toy"

    def to_text(self) -> str:
        return "Toy(" + ", ".join(self.ops) + ")"

    def to_dict(self) -> dict:
        return {"space": "toy", "ops": list(self.ops)}

    @classmethod
    def from_dict(cls, d) -> "ToyArch":
        return cls(tuple(d["ops"]))


class ToyNet(nn.Module):
    def __init__(self, C: int, num_classes: int, in_channels: int, edges: int):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, C, 3, padding=1, bias=False)
        self.edges = nn.ModuleList(MixedOp(C, 1, TOY_PRIMITIVES, make=toy_op) for _ in range(edges))
        self.classifier = nn.Linear(C, num_classes)

    def forward(self, x, weights):
        x = self.stem(x)
        for e, edge in enumerate(self.edges):
            x = edge(x, weights[e])
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ToySearchModel(SearchModel):
    space = "toy"
    genotype_type = ToyArch
    settings = frozenset({"channels_last", "nodes"})  # `nodes` here: the number of chained edges

    def __init__(self, C=4, num_classes=10, in_channels=3, edges=2, relaxation="softmax", max_w=False):
        super().__init__()
        self.hparams = dict(C=C, num_classes=num_classes, in_channels=in_channels, edges=edges,
                            relaxation=relaxation, max_w=max_w)
        self.primitives = TOY_PRIMITIVES
        self.net = ToyNet(C, num_classes, in_channels, edges)
        self.alphas = nn.ParameterDict({"chain": nn.Parameter(1e-3 * torch.randn(edges, len(TOY_PRIMITIVES)))})
        self.init_search(relaxation, max_w)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        return ["the toy space takes at most 3 edges (--nodes)"] if config.nodes > 3 else []

    @classmethod
    def from_config(cls, config, data):
        return cls(C=config.channels, num_classes=data.num_classes, in_channels=data.in_channels,
                   edges=config.nodes, relaxation=config.relaxation, max_w=config.max_w)

    def forward(self, x):
        return self.net(self.prepare_input(x), self.op_weights()["chain"])

    def genotype(self) -> ToyArch:
        rows = self.derivation_weights()["chain"].tolist()
        return ToyArch(tuple(self.primitives[max(range(len(r)), key=r.__getitem__)] for r in rows))

    @staticmethod
    def parameter_free_ops(genotype: ToyArch) -> int:
        return sum(op != "nor_conv_3x3" for op in genotype.ops)
