"""NAS-Bench-201 cells (Dong and Yang, arXiv:2001.00326): the architecture string both ways, and the loader for
strings and run directories.

The string is the benchmark's own: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1 | node 2 | node 3; ``~i`` the
input node), 6 edges, each one of ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DartsNasError
from .cnn import PARAMETER_FREE
from .text import spec_string

NB201_PRIMITIVES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# The edges in the order of the architecture string: (node, input node).
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


@dataclass(frozen=True)
class NB201Arch:
    """One NAS-Bench-201 cell: the op of each edge, in :data:`NB201_EDGES` order."""

    space = "nb201"  # the search space whose cells this type describes (the "space" key of its JSON form)

    @staticmethod
    def load(spec) -> "NB201Arch":
        """A published name, a run directory, a genotype file, or pasted text, as this type."""
        return load_nb201_arch(spec)

    ops: tuple[str, ...]

    def __post_init__(self):
        ops = tuple(self.ops)
        if len(ops) != len(NB201_EDGES):
            raise DartsNasError(f"a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {len(ops)} ops")
        unknown = [op for op in ops if op not in NB201_PRIMITIVES]
        if unknown:
            raise DartsNasError(f"unknown NAS-Bench-201 op {unknown[0]!r} (known: {', '.join(NB201_PRIMITIVES)})")
        object.__setattr__(self, "ops", ops)

    def graphs(self) -> list:
        """The cell as drawings see it: node 0 its input, nodes 1 and 2, node 3 the sum of its edges; an edge
        whose op is ``none`` is no connection and is not drawn."""
        from .graph import CellGraph

        edges = tuple((str(i), str(j), op) for (j, i), op in zip(NB201_EDGES, self.ops) if op != "none")
        return [CellGraph("cell", ("0",), ("1", "2"), "3", edges, "sum")]

    def to_text(self) -> str:
        nodes = []
        for node in (1, 2, 3):
            nodes.append("|".join(f"{op}~{i}" for (j, i), op in zip(NB201_EDGES, self.ops) if j == node))
        return "|" + "|+|".join(nodes) + "|"

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "NB201Arch":
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; each node must list each of its inputs once (any
        order)."""
        s = str(text).strip()
        parts = s.split("+")
        if len(parts) != 3 or not all(p.startswith("|") and p.endswith("|") and len(p) > 2 for p in parts):
            raise DartsNasError(f"not a NAS-Bench-201 architecture string: {s[:120]!r} (expected "
                                "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
        chosen = {}
        for node, part in enumerate(parts, 1):
            tokens = part[1:-1].split("|")
            inputs = {}
            for token in tokens:
                op, sep, idx = token.partition("~")
                if not sep or not idx.isdigit():
                    raise DartsNasError(f"bad edge {token!r} in {s[:120]!r}: expected op~input")
                inputs[int(idx)] = op
            if sorted(inputs) != list(range(node)) or len(tokens) != node:
                raise DartsNasError(f"node {node} of {s[:120]!r} must take inputs 0..{node - 1} once each")
            for i, op in inputs.items():
                chosen[(node, i)] = op
        return cls(tuple(chosen[e] for e in NB201_EDGES))

    def to_dict(self) -> dict:
        return {"space": "nb201", "arch": self.to_text()}

    @classmethod
    def from_dict(cls, d) -> "NB201Arch":
        if not isinstance(d, dict) or d.get("space") != "nb201" or "arch" not in d:
            raise DartsNasError("not a NAS-Bench-201 genotype record (expected {\"space\": \"nb201\", \"arch\": ...})")
        return cls.from_text(d["arch"])

    def parameter_free_ops(self) -> int:
        """Edges whose op has no weights (none, skip, pooling): 6 is the all-skip collapse."""
        return sum(op in PARAMETER_FREE for op in self.ops)


def load_nb201_arch(spec) -> NB201Arch:
    """An architecture string, or a NAS-Bench-201 run directory's (or file's) genotype.json."""
    if isinstance(spec, NB201Arch):
        return spec
    s = spec_string(spec)
    path = Path(s).expanduser()
    if not path.exists():
        if "~" not in s:
            raise DartsNasError(f"{s}: neither an architecture string (|op~0|+|op~0|op~1|+...) nor an existing "
                                "run directory")
        return NB201Arch.from_text(s)
    target = path / "genotype.json" if path.is_dir() else path
    if not target.is_file():
        raise DartsNasError(f"{path}: directory holds no genotype.json (is it a finished search run?)")
    try:
        content = json.loads(target.read_text())
    except (OSError, ValueError) as e:
        raise DartsNasError(f"{target}: not valid JSON ({e})") from None
    return NB201Arch.from_dict(content)
