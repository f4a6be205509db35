"""The cell RL-DARTS derives (Miao et al., arXiv:2106.02229): one cell type with a single input, used for every
cell of the agent's IMPALA-style encoder.

``RLCell(ops='rl', nodes=[[('conv_3x3', 0)], [('tanh', 0), ('conv_3x3', 1)], ...])``: the op set the cell was
searched over, then per intermediate node its incoming edges as (op, input). Input 0 is the cell's input, input
k >= 1 is intermediate node k - 1. Each node sums its edges and normalizes the sum (batch statistics, no affine);
the cell's output concatenates all nodes and mixes them with a 1x1 conv (the authors' "concat_conv").

Derivation as DARTS, in the authors' code: drop the zero op, take each edge's strongest op, keep the two strongest
predecessors of each node (node 0 has only the input, so it keeps one edge).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DartsNasError
from .cnn import PARAMETER_FREE, PRIMITIVES
from .text import _is_int, literal_fields, load_typed

# The op sets an RL-DARTS cell is searched over. "rl" is the authors' default (Conv3x3, Relu, Tanh,
# SkipConnection, Zero; their darts_ops.DEFAULT_SEARCH_SPACE); "darts" is DARTS' CNN op set at stride 1.
RL_OP_SETS: dict[str, tuple[str, ...]] = {
    "rl": ("conv_3x3", "relu", "tanh", "skip_connect", "none"),
    "darts": PRIMITIVES,
}
# The ops of the "rl" set without weights (conv_3x3 is the only one with any).
RL_PARAMETER_FREE = frozenset({"relu", "tanh", "skip_connect", "none"})


def op_set(name: str) -> tuple[str, ...]:
    if name not in RL_OP_SETS:
        raise DartsNasError(f"unknown RL-DARTS op set {name!r} (known: {', '.join(RL_OP_SETS)})")
    return RL_OP_SETS[name]


@dataclass(frozen=True)
class RLCell:
    """An RL-DARTS cell: its op set and, per intermediate node, its (op, input) edges."""

    space = "rl-darts"
    network = "rl-cell"
    trained_by = "darts-nas rl train --genotype ..."  # not an image classifier's cell

    ops: str
    nodes: tuple[tuple[tuple[str, int], ...], ...]

    @staticmethod
    def load(spec) -> "RLCell":
        return load_rl_cell(spec)

    def __post_init__(self):
        names = op_set(self.ops)
        if isinstance(self.nodes, (str, bytes)) or not isinstance(self.nodes, (list, tuple)) or not self.nodes:
            raise DartsNasError("RLCell nodes must be a non-empty list, one list of (op, input) per node")
        nodes = []
        for i, edges in enumerate(self.nodes):
            if isinstance(edges, (str, bytes)) or not isinstance(edges, (list, tuple)) or not edges:
                raise DartsNasError(f"RLCell nodes[{i}]: expected a non-empty list of (op, input)")
            seen, out = set(), []
            for edge in edges:
                if isinstance(edge, (str, bytes)) or not isinstance(edge, (list, tuple)) or len(edge) != 2:
                    raise DartsNasError(f"RLCell nodes[{i}]: expected (op, input) pairs, got {edge!r}")
                op, j = edge
                if op not in names or op == "none":
                    raise DartsNasError(f"RLCell nodes[{i}]: {op!r} is not an op of the {self.ops!r} set "
                                        f"({', '.join(n for n in names if n != 'none')})")
                if not _is_int(j) or not 0 <= j <= i:
                    raise DartsNasError(f"RLCell nodes[{i}]: input {j!r} must be 0 (the cell input) to {i} "
                                        f"(node {i - 1})" if i else "RLCell nodes[0]: its only input is 0")
                if j in seen:
                    raise DartsNasError(f"RLCell nodes[{i}]: input {j} appears twice")
                seen.add(j)
                out.append((op, int(j)))
            nodes.append(tuple(out))
        object.__setattr__(self, "nodes", tuple(nodes))

    def graphs(self) -> list:
        from .graph import CellGraph

        names = tuple(str(i) for i in range(len(self.nodes)))
        inputs = ("input",)
        label = inputs + names
        edges = tuple((label[j], names[i], op) for i, node in enumerate(self.nodes) for op, j in node)
        edges += tuple((n, "output", "") for n in names)
        return [CellGraph("cell", inputs, names, "output", edges, "concat + 1x1 conv")]

    def to_text(self) -> str:
        nodes = ", ".join("[" + ", ".join(f"({op!r}, {j})" for op, j in node) + "]" for node in self.nodes)
        return f"RLCell(ops={self.ops!r}, nodes=[{nodes}])"

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "RLCell":
        fields = literal_fields(str(text), "RLCell")
        if set(fields) != {"ops", "nodes"}:
            raise DartsNasError("RLCell(...) takes two fields, ops=... and nodes=[...]")
        return cls(fields["ops"], fields["nodes"])

    def to_dict(self) -> dict:
        return {"space": self.space, "ops": self.ops, "nodes": [[list(e) for e in node] for node in self.nodes]}

    @classmethod
    def from_dict(cls, d) -> "RLCell":
        if not isinstance(d, dict) or d.get("space") != cls.space or not {"ops", "nodes"} <= set(d):
            raise DartsNasError('not an RL-DARTS cell record (expected {"space": "rl-darts", "ops": ..., '
                                '"nodes": [...]})')
        nodes = d["nodes"]
        if isinstance(nodes, list):
            nodes = [[tuple(e) if isinstance(e, list) else e for e in node] if isinstance(node, list) else node
                     for node in nodes]
        return cls(d["ops"], nodes)

    def parameter_free_ops(self) -> int:
        """Edges whose op has no weights: a cell of only those is DARTS' collapse."""
        free = RL_PARAMETER_FREE if self.ops == "rl" else PARAMETER_FREE
        return sum(op in free for node in self.nodes for op, _ in node)


def derive_rl_cell(weights, ops: str, keep: int = 2) -> RLCell:
    """The discrete cell of an RL-DARTS supernet: `weights` [edges, |ops|] (softmax of the alphas, edges in the
    order node 0's input; node 1's input, node 0; ...). Per edge the strongest op other than `none`; per node the
    `keep` predecessors whose best op is strongest (ties to the earlier input)."""
    names = op_set(ops)
    rows = [list(map(float, r)) for r in weights]
    cols = [k for k, n in enumerate(names) if n != "none"]
    nodes, e = [], 0
    while e < len(rows):
        i = len(nodes)
        edges = rows[e:e + i + 1]
        if len(edges) != i + 1:
            raise DartsNasError(f"derive_rl_cell: {len(rows)} edge rows do not make whole nodes")
        best = [max(cols, key=lambda k: (r[k], -k)) for r in edges]
        order = sorted(range(i + 1), key=lambda j: (-edges[j][best[j]], j))[:keep]
        nodes.append([(names[best[j]], j) for j in sorted(order)])
        e += i + 1
    return RLCell(ops, nodes)


def load_rl_cell(spec) -> RLCell:
    """An RL search run directory's (or file's) genotype.json, or ``RLCell(...)`` text."""
    if isinstance(spec, RLCell):
        return spec
    return load_typed(spec, RLCell, "not an RL-DARTS search run directory, genotype file or RLCell(...) text")
