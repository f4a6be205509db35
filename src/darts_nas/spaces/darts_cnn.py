"""The DARTS CNN search space (DARTS, arXiv:1806.09055, sections 2.1-2.2).

The supernet is a pure function of (weights, op weights, x): the op weights are forward arguments, and the
alphas live beside the network in :class:`DartsCNNSearchModel`, never inside it. Search-time BN uses batch
statistics and has no buffers, so ``torch.func.functional_call`` can evaluate the network at any weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from ..errors import DartsNasError
from ..settings import SettingsGroup, setting
from ..genotypes import PARAMETER_FREE, PRIMITIVES, Genotype, derive_genotype
from ..ops import FactorizedReduce, ReLUConvBN
from .base import SearchData, SearchModel, parameter_count_millions
from .fused import check_fusable, fused_nodes
from .mixed import MixedOp


def num_edges(steps: int) -> int:
    """Edges of a cell with `steps` intermediate nodes: node i has i + 2 inputs (14 for 4 nodes)."""
    return sum(2 + i for i in range(steps))


def check_partial_channels(C: int, K: int) -> None:
    """PC-DARTS sends C/K channels through each edge's ops; a strided skip (FactorizedReduce) needs them even."""
    if K != 1 and (K < 1 or C % K or (C // K) % 2):
        raise DartsNasError(f"partial channels K={K} must divide C={C} into an even number of channels per edge "
                            "(--partial-channels, --channels)")


def weight_table(primitives, weights, steps: int) -> str:
    """One row per edge (node <- input state), one column per op."""
    rows = weights.detach().cpu().tolist()
    lines = ["edge      " + " ".join(f"{p[:12]:>12}" for p in primitives)]
    e = 0
    for i in range(steps):
        for j in range(2 + i):
            lines.append(f"{i + 2}<-{j:<6}" + " ".join(f"{w:>12.4f}" for w in rows[e]))
            e += 1
    return "\n".join(lines)


def edge_weights(betas: torch.Tensor, steps: int) -> torch.Tensor:
    """PC-DARTS edge normalization: softmax of the betas over the inputs of each node, concatenated per edge."""
    parts, offset = [], 0
    for i in range(steps):
        parts.append(torch.softmax(betas[offset: offset + 2 + i], dim=-1))
        offset += 2 + i
    return torch.cat(parts)


class SearchCell(nn.Module):
    """A cell of the supernet: two preprocessed inputs, `steps` nodes, each the sum of mixed ops over all
    earlier states (weighted by the edge weights with edge normalization); output the channel concat of the last
    `multiplier` nodes."""

    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev, primitives=PRIMITIVES,
                 partial: int = 1, make=None, node_norm: bool = False):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False, track_running_stats=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False, track_running_stats=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False, track_running_stats=False)
        self.edges = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(C, stride, primitives, partial, make))
        # State j (0, 1: the inputs; 2 + i: node i) feeds nodes max(0, j - 1) .. steps - 1: (those nodes, the
        # edges that carry it), the order in which the fused path walks the cell. The last node feeds none.
        self.out_edges = []
        for j in range(steps + 1):
            targets = list(range(max(0, j - 1), steps))
            self.out_edges.append((targets, [self.edge_index(i, j) for i in targets]))
        self.fused = False
        # DARTS-PRIME: each node's sum normalized by a BatchNorm without affine parameters (batch statistics).
        self.node_norms = nn.ModuleList(nn.BatchNorm2d(C, affine=False, track_running_stats=False)
                                        for _ in range(steps)) if node_norm else None

    def edge_index(self, node: int, state: int) -> int:
        """Index of the edge from state `state` (0, 1: the cell inputs) into intermediate node `node`."""
        return sum(2 + i for i in range(node)) + state

    def forward(self, s0, s1, weights, edge_w=None, selected=None):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        if self.fused:
            states += fused_nodes(self, states, weights, edge_w)
        else:
            offset = 0
            for _ in range(self.steps):
                node = None
                for j, h in enumerate(states):
                    sel = None if selected is None else selected[offset + j]
                    if sel == ():  # no op of this edge chosen (UNAS' cell): it adds nothing
                        continue
                    y = self.edges[offset + j](h, weights[offset + j], sel)
                    if edge_w is not None:
                        y = edge_w[offset + j] * y
                    node = y if node is None else node + y
                if self.node_norms is not None:
                    node = self.node_norms[len(states) - 2](node)
                offset += len(states)
                states.append(node)
        return torch.cat(states[-self.multiplier:], dim=1)


def reduction_count(layers: int) -> int:
    """How many of `layers` cells are reductions (at 1/3 and 2/3 depth, one cell when they meet): each halves the
    map with a FactorizedReduce, which needs an even side."""
    return len({i for i in (layers // 3, 2 * layers // 3) if 0 <= i < layers})


class SearchNetwork(nn.Module):
    """Stem, `layers` cells (reductions at 1/3 and 2/3 depth, channels doubled there), pooling, classifier."""

    def __init__(self, C=16, num_classes=10, layers=8, steps=4, multiplier=4, stem_multiplier=3, in_channels=3,
                 primitives=PRIMITIVES, partial: int = 1, make=None, node_norm: bool = False):
        super().__init__()
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_curr, track_running_stats=False),
        )
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev,
                                         primitives, partial, make, node_norm))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.classifier = nn.Linear(C_prev, num_classes)
        self.checkpoint_cells = False

    def forward(self, x, weights_normal, weights_reduce, edges_normal=None, edges_reduce=None, selected=None):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w, e = (weights_reduce, edges_reduce) if cell.reduction else (weights_normal, edges_normal)
            sel = None if selected is None else selected["reduce" if cell.reduction else "normal"]
            if self.checkpoint_cells and torch.is_grad_enabled():
                s1_next = checkpointed(cell, s0, s1, w, e, sel)
            else:
                s1_next = cell(s0, s1, w, e, sel)
            s0, s1 = s1, s1_next
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(s1, 1), 1))


def checkpointed(cell: nn.Module, *inputs):
    """cell(*inputs) keeping only its inputs; backward recomputes its activations. The cell's current parameter
    tensors go in as inputs, so the recomputation uses them even under ``functional_call`` (w', w +- r v of the
    second order), whose substitution has ended by the time backward runs. Search BN has no running statistics and
    the cell draws no random numbers, so the recomputation is the same function without saving RNG states (which
    CUDA graph capture would not allow)."""
    names, values = zip(*cell.named_parameters())

    def run(*args):
        return functional_call(cell, dict(zip(names, args[len(inputs):])), args[: len(inputs)])

    return checkpoint(run, *inputs, *values, use_reentrant=False, preserve_rng_state=False)


@dataclass
class DartsCNNSettings(SettingsGroup):
    """The DARTS CNN supernet's own settings (read by the spaces built on it): its stem, PC-DARTS' partial
    channels and edge normalization, and its execution options."""

    POSITIVE = ("stem_multiplier", "partial_channels")

    stem_multiplier: int = setting(3, "stem output channels = stem_multiplier * C", space_setting=True)
    partial_channels: int = setting(1, "PC-DARTS: only 1/K of each edge's channels go through its ops (1: all, "
                                    "DARTS; PC-DARTS uses 4)", space_setting=True)
    edge_normalization: bool = setting(False, "PC-DARTS edge normalization: a learned softmax weight over the "
                                       "inputs of each node", space_setting=True)
    fuse_ops: bool = setting(False, "compute all candidate ops that read one state in a few batched kernels",
                             space_setting=True)
    checkpoint_cells: bool = setting(False, "recompute each cell's activations in backward (less memory, more "
                                     "time)", space_setting=True)


class DartsCNNSearchModel(SearchModel):
    """Supernet weights plus the architecture parameters: two alpha matrices (normal, reduce), each [edges, ops],
    init 1e-3 N(0, 1); with edge normalization (PC-DARTS) also two beta vectors [edges], init the same way.

    Execution settings that do not change the function: :meth:`use_channels_last`, :meth:`use_precision`,
    :meth:`use_fused_ops`, :meth:`use_cell_checkpointing`.
    """

    space = "darts-cnn"
    genotype_type = Genotype
    default_primitives: tuple[str, ...] = PRIMITIVES  # a subclass's own op set (sharpDARTS, DARTS-PRIME)
    op_factory = None      # make(name, C, stride) of the supernet's ops; None: DARTS' (ops.darts_op)
    node_norm = False      # a BatchNorm (no affine parameters) on each node's sum (DARTS-PRIME)
    settings = frozenset({"layers", "nodes", "stem_multiplier", "partial_channels", "edge_normalization",
                          "fuse_ops", "checkpoint_cells", "channels_last", "cuda_graphs", "split_file",
                          "resource_weight", "stop_param_free"})
    settings_groups = (DartsCNNSettings,)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        try:
            check_partial_channels(config.channels, config.partial_channels)
        except DartsNasError as e:
            return [str(e)]
        return []

    @classmethod
    def input_side_multiple(cls, config) -> int:
        return 2 ** reduction_count(config.layers)

    @classmethod
    def from_config(cls, config, data: SearchData) -> "DartsCNNSearchModel":
        return cls(C=config.channels, num_classes=data.num_classes, layers=config.layers, steps=config.nodes,
                   multiplier=config.nodes, stem_multiplier=config.stem_multiplier, in_channels=data.in_channels,
                   relaxation=config.relaxation, partial_channels=config.partial_channels,
                   edge_normalization=config.edge_normalization, max_w=config.max_w)

    def apply_execution_settings(self, config) -> "DartsCNNSearchModel":
        super().apply_execution_settings(config)
        if self.net.cells[0].edges[0].partial > 1:
            # PC-DARTS' channel slices in NHWC crash or hang torch 2.13.0's CPU backward (seen on a 2-core AMD
            # EPYC, nondeterministically, at 32x32 and batch 16): its supernet stays NCHW, the same function.
            self.use_channels_last(False)
        return self.use_fused_ops(config.fuse_ops).use_cell_checkpointing(config.checkpoint_cells)

    def __init__(self, C=16, num_classes=10, layers=8, steps=4, multiplier=None, stem_multiplier=3, in_channels=3,
                 primitives=None, relaxation="softmax", partial_channels=1, edge_normalization=False,
                 max_w=False):
        super().__init__()
        primitives = self.default_primitives if primitives is None else primitives
        multiplier = steps if multiplier is None else multiplier  # concat all intermediate nodes by default
        check_partial_channels(C, partial_channels)
        self.hparams = dict(C=C, num_classes=num_classes, layers=layers, steps=steps, multiplier=multiplier,
                            stem_multiplier=stem_multiplier, in_channels=in_channels, primitives=list(primitives),
                            relaxation=relaxation, partial_channels=partial_channels,
                            edge_normalization=edge_normalization, max_w=max_w)
        self.primitives = tuple(primitives)
        self.steps = steps
        self.net = SearchNetwork(C, num_classes, layers, steps, multiplier, stem_multiplier, in_channels, primitives,
                                 partial_channels, self.op_factory, self.node_norm)
        shape = (num_edges(steps), len(primitives))
        self.alphas = nn.ParameterDict({
            "normal": nn.Parameter(1e-3 * torch.randn(shape)),
            "reduce": nn.Parameter(1e-3 * torch.randn(shape)),
        })
        self.betas = nn.ParameterDict()
        if edge_normalization:
            self.betas["normal"] = nn.Parameter(1e-3 * torch.randn(shape[0]))
            self.betas["reduce"] = nn.Parameter(1e-3 * torch.randn(shape[0]))
        self.init_search(relaxation, max_w)

    # -- execution settings: the same function, computed differently ---------------------------------------------
    def use_fused_ops(self, enabled: bool = True) -> "DartsCNNSearchModel":
        """Compute all the candidate ops that read one state of a cell (every edge leaving it) as a few batched
        kernels instead of a few per op and edge (see :mod:`darts_nas.spaces.fused`): the same function, about
        4x fewer kernel launches."""
        if enabled:
            check_fusable(self.primitives)
            if self.relaxation.hard:
                raise DartsNasError("--fuse-ops computes every op of an edge; the hard-gumbel relaxation (GDAS) "
                                    "evaluates one, so they do not combine")
        for cell in self.net.cells:
            cell.fused = enabled
        return self

    def use_cell_checkpointing(self, enabled: bool = True) -> "DartsCNNSearchModel":
        """Activation checkpointing per cell: backward recomputes each cell's forward instead of keeping its
        activations (less memory, about one more forward of time)."""
        self.net.checkpoint_cells = enabled
        return self

    # -- the two parameter sets -------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas["normal"], self.alphas["reduce"], *self.betas.values()]

    # -- the function -----------------------------------------------------------------------------------------
    def edge_weights(self) -> dict[str, torch.Tensor]:
        """Per-edge weights of edge normalization (empty without it)."""
        return {name: edge_weights(beta, self.steps) for name, beta in self.betas.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.op_weights()
        e = self.edge_weights()
        return self.net(self.prepare_input(x), w["normal"], w["reduce"], e.get("normal"), e.get("reduce"),
                        self.selections(w))

    def op_costs(self) -> dict[str, torch.Tensor]:
        """Parameters (millions) of each candidate op on each edge, summed over the cells sharing those alphas."""
        costs = {}
        for name, reduction in (("normal", False), ("reduce", True)):
            cells = [c for c in self.net.cells if c.reduction == reduction]
            costs[name] = torch.tensor([[sum(parameter_count_millions(c.edges[e].op_for_column(k)) for c in cells)
                                         for k in range(len(self.primitives))] for e in range(num_edges(self.steps))])
        return {k: v.to(self.alphas["normal"].device) for k, v in costs.items()}

    # -- the discrete architecture ----------------------------------------------------------------------------
    @torch.no_grad()
    def derivation_weights(self) -> dict[str, torch.Tensor]:
        """The relaxation's deterministic weights over all ops, including `none` (arXiv:1806.09055, section 2.4): softmax
        of the alphas (sigmoid for the independent relaxation). With edge normalization each edge's row is scaled
        by its edge weight, as PC-DARTS derives its cells."""
        w = self.probabilities()
        for name, e in self.edge_weights().items():
            w[name] = w[name] * e[:, None]
        return w

    def alpha_table(self) -> str:
        """Per cell type, softmax(alpha) of every edge (node <- input state), one column per op."""
        return "\n".join(f"\n{cell} cell, softmax(alpha):\n{weight_table(self.primitives, w, self.steps)}"
                         for cell, w in self.derivation_weights().items())

    @torch.no_grad()
    def derived_weights(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The derived cells as one-hot rows: each node's two kept edges with their op, every other edge `none`
        (derived from `weights` when given, else from the current alphas)."""
        w_all = self.derivation_weights() if weights is None else weights
        g = derive_genotype(w_all["normal"], w_all["reduce"], self.primitives, self.steps, self.genotype_type)
        out = {}
        for name, cell in (("normal", g.normal), ("reduce", g.reduce)):
            a = self.alphas[name]
            w = torch.zeros_like(a)
            if "none" in self.primitives:
                w[:, self.primitives.index("none")] = 1.0
            offsets = [sum(m + 2 for m in range(i)) for i in range(self.steps)]
            for k, (op, j) in enumerate(cell):
                row = offsets[k // 2] + j
                w[row] = 0.0
                w[row, self.primitives.index(op)] = 1.0
            out[name] = w
        return out

    def edge_names(self) -> dict[str, list[str]]:
        """Node i reads c_{k-2}, c_{k-1} and the nodes before it, in that order."""
        names = []
        for i in range(self.steps):
            names += [f"{('c_{k-2}', 'c_{k-1}')[j] if j < 2 else j - 2}->{i}" for j in range(i + 2)]
        return {"normal": names, "reduce": list(names)}

    def alpha_record(self) -> dict:
        out = super().alpha_record()
        if len(self.betas):
            out["betas"] = {k: b.detach().cpu().tolist() for k, b in self.betas.items()}
            out["edge_weights"] = {k: e.detach().cpu().tolist() for k, e in self.edge_weights().items()}
        return out

    def genotype(self) -> Genotype:
        """The derived cell (DARTS rule, see :func:`darts_nas.genotypes.derive_cell`)."""
        w = self.derivation_weights()
        return derive_genotype(w["normal"], w["reduce"], self.primitives, self.steps, self.genotype_type)

    @staticmethod
    def parameter_free_ops(genotype: Genotype) -> int:
        """Parameter-free ops (skip, pooling) among the 16 of the derived normal and reduction cells."""
        return sum(op in PARAMETER_FREE for op, _ in (*genotype.normal, *genotype.reduce))
