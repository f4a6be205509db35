"""UNAS' DARTS cell space (Vahdat, Mallya, Liu, Kautz, CVPR 2020, arXiv:1912.07651), written from its description.

The cell is DARTS' (two inputs, ``steps`` nodes, output the concat of the nodes; reduction cells at 1/3 and 2/3 of
the depth), but each node is built from two *slots*, and each slot makes two categorical choices: which earlier
state it reads (node i has i + 2 candidates) and which op it applies (7 ops, no ``none``: a slot always
contributes). A node is the sum of its two slots. The derived cell therefore has, per node, exactly the two
(op, input) pairs the slots choose, which is the genotype format of DARTS, and it trains in DARTS' networks.

Alphas, shared by all normal (and by all reduction) cells, initialised at 0:

- ``<cell>_ops`` ``[2 steps, 7]``: row 2i + s is slot s of node i's op logits;
- ``<cell>_in<i>`` ``[2, i + 2]``: the input logits of node i's two slots.

With relaxed weights p_in (over inputs) and p_op (over ops) of each slot, a slot's output is
sum_j sum_o p_in[j] p_op[o] op_{j,o}(state_j), where op_{j,o} is op o on the edge from state j into the node,
shared by the node's two slots (an edge's ops belong to the edge, as in DARTS). The sum over the two slots is
therefore a DARTS cell whose edge (j -> i) weights op o by W[j, o] = sum_s p_in_s[j] p_op_s[o]: the supernet is
DARTS' (:class:`SearchNetwork`) fed these combined weights. With one-hot samples (hard Gumbel, or the discrete
architecture of the score-function estimators) only the chosen (input, op) pairs run.

The pair penalty (weight 0.2 in UNAS) discourages the two slots of a node from choosing the same (input, op) pair:
weight * sum_i <q_0, q_1>, q_s the distribution of slot s over pairs (outer product of p_in_s and p_op_s), so
<q_0, q_1> = <p_in_0, p_in_1> <p_op_0, p_op_1>. It is added to the alphas' objective in every strategy.

Pools have no BatchNorm here (unlike DARTS' supernet), as in UNAS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import DartsNasError
from ..settings import SettingsGroup, setting
from ..genotypes import PARAMETER_FREE, Genotype
from ..ops import unas_op
from .base import SearchData, SearchModel
from .darts_cnn import SearchNetwork, num_edges, reduction_count

# UNAS' candidate ops (no `none`), in the column order of the ops' alphas.
UNAS_PRIMITIVES: tuple[str, ...] = ("skip_connect", "sep_conv_3x3", "max_pool_3x3", "dil_conv_3x3", "sep_conv_5x5",
                                    "avg_pool_3x3", "sep_conv_7x7")
CELLS = ("normal", "reduce")


def combined_edge_weights(w_ops: torch.Tensor, w_in: list[torch.Tensor]) -> torch.Tensor:
    """DARTS edge weights ``[edges, ops]`` of a cell from its slots' op weights ``[2 steps, ops]`` and input weights
    (node i: ``[2, i + 2]``): W[edge(j -> i), o] = sum_s w_in_i[s, j] w_ops[2i + s, o]."""
    rows = []
    for i, w in enumerate(w_in):
        rows.append((w[:, :, None] * w_ops[2 * i: 2 * i + 2, None, :]).sum(0))
    return torch.cat(rows)


def pair_overlap(w_ops: torch.Tensor, w_in: list[torch.Tensor]) -> torch.Tensor:
    """sum over nodes of <q_0, q_1>, q_s = outer(p_in_s, p_op_s) flattened: the pair penalty before its weight."""
    total = w_ops.new_zeros(())
    for i, w in enumerate(w_in):
        total = total + (w[0] * w[1]).sum() * (w_ops[2 * i] * w_ops[2 * i + 1]).sum()
    return total


@dataclass
class UnasDartsSettings(SettingsGroup):
    """UNAS' penalty on a node's two slots choosing the same pair (:meth:`UnasDartsSearchModel.arch_penalty`)."""

    pair_penalty: float = setting(0.2, "unas-darts: weight of the penalty on a node's two slots choosing the same "
                                  "(input, op) pair (UNAS: 0.2)", space_setting=True)


class UnasDartsSearchModel(SearchModel):
    """UNAS' DARTS cell space (``--space unas-darts``); see the module docstring."""

    space = "unas-darts"
    genotype_type = Genotype
    settings = frozenset({"layers", "nodes", "stem_multiplier", "channels_last", "split_file", "pair_penalty",
                          "stop_param_free"})
    settings_groups = (UnasDartsSettings,)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        return ["--pair-penalty cannot be negative"] if config.pair_penalty < 0 else []

    @classmethod
    def input_side_multiple(cls, config) -> int:
        return 2 ** reduction_count(config.layers)

    @classmethod
    def from_config(cls, config, data: SearchData) -> "UnasDartsSearchModel":
        return cls(C=config.channels, num_classes=data.num_classes, layers=config.layers, steps=config.nodes,
                   stem_multiplier=config.stem_multiplier, in_channels=data.in_channels,
                   relaxation=config.relaxation, max_w=config.max_w, pair_penalty=config.pair_penalty)

    def __init__(self, C=16, num_classes=10, layers=8, steps=4, stem_multiplier=3, in_channels=3,
                 relaxation="softmax", max_w=False, pair_penalty=0.2):
        super().__init__()
        self.hparams = dict(C=C, num_classes=num_classes, layers=layers, steps=steps, stem_multiplier=stem_multiplier,
                            in_channels=in_channels, relaxation=relaxation, max_w=max_w, pair_penalty=pair_penalty)
        self.primitives = UNAS_PRIMITIVES
        self.steps = steps
        self.pair_penalty = pair_penalty
        self.net = SearchNetwork(C, num_classes, layers, steps, steps, stem_multiplier, in_channels, UNAS_PRIMITIVES,
                                 make=unas_op)
        alphas = {}
        for cell in CELLS:
            alphas[f"{cell}_ops"] = nn.Parameter(torch.zeros(2 * steps, len(UNAS_PRIMITIVES)))
            for i in range(steps):
                alphas[f"{cell}_in{i}"] = nn.Parameter(torch.zeros(2, i + 2))
        self.alphas = nn.ParameterDict(alphas)
        self.init_search(relaxation, max_w)

    # -- the alphas, per cell type ----------------------------------------------------------------------------
    def _split(self, weights: dict[str, torch.Tensor], cell: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return weights[f"{cell}_ops"], [weights[f"{cell}_in{i}"] for i in range(self.steps)]

    def columns(self) -> dict[str, list[str]]:
        out = {}
        for cell in CELLS:
            out[f"{cell}_ops"] = list(self.primitives)
            for i in range(self.steps):
                out[f"{cell}_in{i}"] = [("c_{k-2}", "c_{k-1}")[j] if j < 2 else f"node {j - 2}" for j in range(i + 2)]
        return out

    def summary_weights(self) -> dict[str, tuple[list[str], torch.Tensor]]:
        """The log's line per cell type: its slots' op weights (the input weights are in `derive --alphas`)."""
        p = self.probabilities()
        return {cell: (list(self.primitives), p[f"{cell}_ops"]) for cell in CELLS}

    def edge_names(self) -> dict[str, list[str]]:
        out = {}
        for cell in CELLS:
            out[f"{cell}_ops"] = [f"node {i} slot {s}" for i in range(self.steps) for s in range(2)]
            for i in range(self.steps):
                out[f"{cell}_in{i}"] = [f"node {i} slot {s}" for s in range(2)]
        return out

    # -- the function -----------------------------------------------------------------------------------------
    def selections(self, weights: dict[str, torch.Tensor]) -> dict[str, list[tuple]] | None:
        """With one-hot weights, per cell type and DARTS edge, the ops the slots chose on it (a tuple, often
        empty): only those run. One transfer per forward."""
        if not (self._fixed_hard if self._fixed_weights is not None else self.relaxation.hard):
            return None
        order = [f"{cell}_{part}" for cell in CELLS for part in ["ops", *(f"in{i}" for i in range(self.steps))]]
        flat = torch.cat([weights[n].detach().argmax(-1) for n in order]).tolist()
        out, pos = {}, 0
        for cell in CELLS:
            ops, pos = flat[pos: pos + 2 * self.steps], pos + 2 * self.steps
            chosen = [set() for _ in range(num_edges(self.steps))]
            for i in range(self.steps):
                inputs, pos = flat[pos: pos + 2], pos + 2
                for s in range(2):
                    chosen[self.net.cells[0].edge_index(i, inputs[s])].add(ops[2 * i + s])
            out[cell] = [tuple(sorted(c)) for c in chosen]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.op_weights()
        combined = {cell: combined_edge_weights(*self._split(w, cell)) for cell in CELLS}
        return self.net(self.prepare_input(x), combined["normal"], combined["reduce"], None, None,
                        self.selections(w))

    def arch_penalty(self) -> torch.Tensor | None:
        """UNAS' pair penalty on the slots' probabilities (see the module docstring)."""
        if not self.pair_penalty:
            return None
        p = self.probabilities()
        return self.pair_penalty * sum(pair_overlap(*self._split(p, cell)) for cell in CELLS)

    # -- the discrete architecture ----------------------------------------------------------------------------
    def genotype(self) -> Genotype:
        """Each slot's strongest input and op: per node the two (op, input) pairs of DARTS' genotype format."""
        w = self.derivation_weights()
        cells = {}
        for cell in CELLS:
            ops, inputs = self._split(w, cell)
            op_idx, in_idx = ops.argmax(-1).tolist(), [v.argmax(-1).tolist() for v in inputs]
            cells[cell] = [(self.primitives[op_idx[2 * i + s]], in_idx[i][s])
                           for i in range(self.steps) for s in range(2)]
        concat = list(range(2, 2 + self.steps))
        return Genotype(normal=cells["normal"], normal_concat=concat, reduce=cells["reduce"], reduce_concat=concat)

    def alpha_table(self) -> str:
        """Per cell type, node and slot: the input and op probabilities."""
        p = self.derivation_weights()
        cols = self.columns()
        lines = []
        for cell in CELLS:
            ops, inputs = self._split(p, cell)
            lines.append(f"\n{cell} cell:")
            for i in range(self.steps):
                for s in range(2):
                    ins = "  ".join(f"{c} {v:.3f}" for c, v in zip(cols[f"{cell}_in{i}"], inputs[i][s].tolist()))
                    op = "  ".join(f"{c} {v:.3f}" for c, v in zip(self.primitives, ops[2 * i + s].tolist()))
                    lines.append(f"  node {i} slot {s}: inputs {ins}\n{'':18}ops    {op}")
        return "\n".join(lines)

    @staticmethod
    def parameter_free_ops(genotype: Genotype) -> int:
        return sum(op in PARAMETER_FREE for op, _ in (*genotype.normal, *genotype.reduce))

    def op_costs(self) -> dict[str, torch.Tensor]:
        raise DartsNasError("the unas-darts space has no SNAS resource penalty (use --latency-weight)")
