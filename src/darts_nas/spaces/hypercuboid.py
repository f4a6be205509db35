"""sharpDARTS' Differentiable Hyperparameter Grid Search over the HyperCuboid (Hundt, Jain, Hager,
arXiv:1903.09900), written from the facts of the authors' code (ahundt/sharpDARTS model_search.py
MultiChannelNetwork @6f593d4; nothing copied).

The network searches strides x layers x input channels x output channels x ops at once. With channel counts
C = (c_0, 2 c_0, 4 c_0, 8 c_0), c_0 = 2^floor(log2 --channels) (36 -> 32, 64, 128, 256; ``--nodes`` counts them)
and L = ``--layers`` // 2 layers:

- one stem per channel count (3x3 conv, BN) reads the image;
- each layer has a stride-1 pass then a stride-2 pass; a pass computes, for every output width c_out, the sum
  over input widths c_in and ops of w[c_in, c_out, op] op(state[c_in]), op a ResizablePool or a SharpSepConv
  (3x3) from c_in to c_out channels at the pass's stride;
- the head: one SharpSepConv to 768 channels per width, summed, pooled, a linear classifier.

The alphas are ``stride1`` and ``stride2``, ``[L, |C| |C| 2]``, one row per layer, columns (c_in, c_out, op) in
that order; each row's softmax is one distribution over the whole block C_in x C_out x ops, as in the authors'
code (so Max-W takes its maximum over the block). The derived architecture is the strongest path: the longest path,
by the sum of its op weights, through the weighted DAG stem -> (layer, stride, c_in -> c_out, op) -> ... -> head
(networkx ``dag_longest_path``), a :class:`~darts_nas.genotypes.HyperPath` that trains from scratch as a plain
network (:class:`~darts_nas.nets.hyperpath.HyperPathNetwork`).

Every BN of the supernet (stems, ops, heads) has affine parameters, as in the authors' code, whose ops are
built with ``affine=True`` (the ``False`` their network passes lands in the ops' unused C_mid argument) and whose
stems and heads use PyTorch's default BN; ``--no-hypercuboid-affine`` drops them. The BNs use batch statistics.

Departures, said plainly: the authors skip ops whose weight is at most 1/(|C|^2 |ops|)^2 to save time; here every
op is computed (the exact relaxation, static shapes). Their path network drops the last step (a slice in their
train.py keeps 7 of 8 ops); here the whole path is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DartsNasError
from ..genotypes import HYPER_OPS, HyperPath
from ..ops import SharpSepConv, batch_norm, hyper_op
from ..settings import SettingsGroup, setting
from .base import SearchData, SearchModel, parameter_count_millions

HEAD_CHANNELS = 768


def channel_counts(C: int, count: int) -> list[int]:
    """2^floor(log2 C) times 1, 2, 4, ... (`count` of them)."""
    base = 2 ** int(math.floor(math.log2(C)))
    return [base * 2 ** i for i in range(count)]


@dataclass
class HyperCuboidSettings(SettingsGroup):
    """The HyperCuboid supernet's own settings."""

    hypercuboid_affine: bool = setting(True, "the HyperCuboid supernet's BNs (stems, ops, heads) have affine "
                                       "parameters, as in sharpDARTS' code", space_setting=True)

    # Searches recorded before the setting existed built their supernet without affine BNs: their checkpoints'
    # model_hparams name no `affine` (the model's default is False) and their configs no hypercuboid_affine.
    RECORDED_BEFORE = {"hypercuboid_affine": False}


class HyperCuboidNetwork(nn.Module):
    """The supernet: stems, L layers of two passes over every (c_in, c_out, op), the summed heads; `affine`: its
    BNs' affine parameters (batch statistics either way)."""

    def __init__(self, channels: list[int], layers: int, num_classes: int, in_channels: int = 3,
                 head: int = HEAD_CHANNELS, affine: bool = True):
        super().__init__()
        self.channels, self.layers = list(channels), layers
        self.stems = nn.ModuleList(nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False),
                                                 batch_norm(c, affine, False)) for c in channels)
        # ops[pass][layer] is a flat list in the alphas' column order (c_in, c_out, op).
        self.ops = nn.ModuleList(
            nn.ModuleList(nn.ModuleList(hyper_op(op, ci, co, stride, True, affine) for ci in channels
                                        for co in channels for op in HYPER_OPS) for _ in range(layers))
            for stride in (1, 2))
        self.heads = nn.ModuleList(SharpSepConv(c, head, 3, affine=affine, track_running_stats=False)
                                   for c in channels)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x, w_stride1, w_stride2):
        n, k = len(self.channels), len(HYPER_OPS)
        states = [stem(x) for stem in self.stems]
        for layer in range(self.layers):
            for p, w in enumerate((w_stride1, w_stride2)):
                row, ops = w[layer].unbind(), self.ops[p][layer]
                new = []
                for j in range(n):
                    out = None
                    for i in range(n):
                        for o in range(k):
                            idx = (i * n + j) * k + o
                            y = row[idx] * ops[idx](states[i])
                            out = y if out is None else out + y
                    new.append(out)
                states = new
        feature = sum(head(s) for head, s in zip(self.heads, states))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(feature, 1), 1))


class HyperCuboidSearchModel(SearchModel):
    """``--space hypercuboid``; see the module docstring."""

    space = "hypercuboid"
    genotype_type = HyperPath
    settings = frozenset({"layers", "nodes", "channels_last", "split_file", "resource_weight", "hypercuboid_affine"})
    settings_groups = (HyperCuboidSettings,)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        return ["the hypercuboid space has --layers // 2 layers: give --layers 2 or more"] if config.layers < 2 else []

    @classmethod
    def from_config(cls, config, data: SearchData) -> "HyperCuboidSearchModel":
        return cls(C=config.channels, widths=config.nodes, layers=config.layers // 2, num_classes=data.num_classes,
                   in_channels=data.in_channels, relaxation=config.relaxation, max_w=config.max_w,
                   affine=config.hypercuboid_affine)

    def __init__(self, C=16, widths=4, layers=4, num_classes=10, in_channels=3, relaxation="softmax", max_w=False,
                 head=HEAD_CHANNELS, affine=False):
        super().__init__()
        if widths < 1 or layers < 1:
            raise DartsNasError("the hypercuboid needs at least one width and one layer")
        self.hparams = dict(C=C, widths=widths, layers=layers, num_classes=num_classes, in_channels=in_channels,
                            relaxation=relaxation, max_w=max_w, head=head, affine=affine)
        self.channels = channel_counts(C, widths)
        self.layers = layers
        self.primitives = HYPER_OPS
        self.net = HyperCuboidNetwork(self.channels, layers, num_classes, in_channels, head, affine)
        shape = (layers, widths * widths * len(HYPER_OPS))
        self.alphas = nn.ParameterDict({"stride1": nn.Parameter(1e-3 * torch.randn(shape)),
                                        "stride2": nn.Parameter(1e-3 * torch.randn(shape))})
        self.init_search(relaxation, max_w)

    def forward(self, x):
        w = self.op_weights()
        return self.net(self.prepare_input(x), w["stride1"], w["stride2"])

    # -- names ------------------------------------------------------------------------------------------------
    def column_keys(self) -> list[tuple[int, int, str]]:
        """(c_in, c_out, op) of each column."""
        return [(ci, co, op) for ci in self.channels for co in self.channels for op in HYPER_OPS]

    def columns(self) -> dict[str, list[str]]:
        names = [f"{ci}->{co} {op}" for ci, co, op in self.column_keys()]
        return {"stride1": names, "stride2": list(names)}

    def edge_names(self) -> dict[str, list[str]]:
        return {k: [f"layer {i}" for i in range(self.layers)] for k in self.alphas}

    def summary_weights(self) -> dict:
        """Per pass, the weight of each op summed over widths and layers' mean: the epoch log's line."""
        out = {}
        for name, w in self.probabilities().items():
            per_op = w.reshape(w.shape[0], -1, len(HYPER_OPS)).sum(1)
            out[name] = (list(HYPER_OPS), per_op)
        return out

    def alpha_record(self) -> dict:
        """The base record plus the grid's layout, which the grid figure reads."""
        return {**super().alpha_record(), "grid": {"channels": list(self.channels), "ops": list(HYPER_OPS),
                                                   "layers": self.layers}}

    def alpha_table(self) -> str:
        """Per pass and layer, the block C_in x C_out of each op (softmax over the whole block)."""
        lines = []
        n = len(self.channels)
        for name, w in self.probabilities().items():
            for layer in range(self.layers):
                block = w[layer].reshape(n, n, len(HYPER_OPS))
                for o, op in enumerate(HYPER_OPS):
                    lines.append(f"{name} layer {layer} {op} (rows c_in, columns c_out "
                                 f"{' '.join(map(str, self.channels))}):")
                    lines += ["  " + f"{ci:>5}: " + " ".join(f"{v:.4f}" for v in block[i, :, o].tolist())
                              for i, ci in enumerate(self.channels)]
        return "\n".join(lines)

    # -- the path ---------------------------------------------------------------------------------------------
    def graph(self, weights: dict[str, torch.Tensor] | None = None):
        """The weighted DAG of the authors' path extraction (networkx): source -> stem per width -> for each layer
        and pass, op nodes (c_in, c_out, op) whose edge into the pass's sum node for c_out weighs the op's weight
        -> ... -> head per width -> sink. Structural edges weigh 1, as networkx's default weight in the authors' graph:
        every source-to-sink path has the same number of them, and they make the longest path reach the sink."""
        import networkx as nx

        w = {k: v.detach().cpu() for k, v in (self.derivation_weights() if weights is None else weights).items()}
        g = nx.DiGraph()
        prev = {}
        for c in self.channels:
            g.add_edge("source", f"stem_c{c}", weight=1.0)
            prev[c] = f"stem_c{c}"
        keys = self.column_keys()
        for layer in range(self.layers):
            for stride, name in ((1, "stride1"), (2, "stride2")):
                row = w[name][layer].tolist()
                added = {}
                for idx, (ci, co, op) in enumerate(keys):
                    node = f"layer_{layer}_stride_{stride}_c_in_{ci}_c_out_{co}_op_type_{op}"
                    add = f"layer_{layer}_add_c_out_{co}_stride_{stride}"
                    g.add_edge(prev[ci], node, weight=1.0)
                    g.add_edge(node, add, weight=float(row[idx]))
                    added[co] = add
                prev = added
        for c in self.channels:
            g.add_edge(prev[c], f"head_c{c}", weight=1.0)
            g.add_edge(f"head_c{c}", "sink", weight=1.0)
        return g

    def longest_path(self, weights: dict[str, torch.Tensor] | None = None) -> list[str]:
        """The node names of the strongest path (networkx dag_longest_path by weight)."""
        import networkx as nx

        return nx.dag_longest_path(self.graph(weights), weight="weight")

    def path_choices(self, weights=None) -> list[tuple[int, int, int, str, int]]:
        """(layer, stride, c_in, c_out, op) of each op node on the strongest path, in order, and the stem width."""
        path = self.longest_path(weights)
        stem = int(path[1].split("_c")[-1])
        steps = []
        for node in path:
            if node.startswith("layer_") and "_op_type_" in node:
                parts = node.split("_")
                steps.append((int(parts[1]), int(parts[3]), int(parts[6]), int(parts[9]), parts[12]))
        return stem, steps

    def derivation_text(self) -> str:
        """The strongest path's nodes, each op with its weight, and the path's total."""
        g = self.graph()
        path = self.longest_path()
        lines, total = [], 0.0
        for a, b in zip(path, path[1:]):
            if "_op_type_" in a:
                w = g.edges[a, b]["weight"]
                total += w
                lines.append(f"  {a}  weight {w:.4f}")
        return "\n".join([f"strongest path (networkx dag_longest_path, total op weight {total:.4f}):",
                          f"  {path[0]} -> {path[1]}", *lines, f"  {path[-3]} -> {path[-2]} -> {path[-1]}"])

    def genotype(self) -> HyperPath:
        stem, steps = self.path_choices()
        return HyperPath(stem, [(stride, ci, co, op) for _, stride, ci, co, op in steps])

    @torch.no_grad()
    def derived_weights(self, weights=None) -> dict[str, torch.Tensor]:
        """The path as one-hot rows: each layer's pass has exactly one (c_in, c_out, op) on it."""
        _, steps = self.path_choices(weights)
        keys = self.column_keys()
        out = {k: torch.zeros_like(a) for k, a in self.alphas.items()}
        for layer, stride, ci, co, op in steps:
            out[f"stride{stride}"][layer, keys.index((ci, co, op))] = 1.0
        return out

    def op_costs(self) -> dict[str, torch.Tensor]:
        """Parameters (millions) of each (c_in, c_out, op) of each layer's passes."""
        costs = {}
        for p, name in enumerate(("stride1", "stride2")):
            costs[name] = torch.tensor([[parameter_count_millions(op) for op in self.net.ops[p][layer]]
                                        for layer in range(self.layers)])
        return {k: v.to(self.alphas["stride1"].device) for k, v in costs.items()}

    @staticmethod
    def parameter_free_ops(genotype) -> int | None:
        return None
