"""Recurrent cells (the DARTS RNN space, arXiv:1806.09055 section 2.1): the genotype, its paper format, the published cells, and the derivation.

A recurrent genotype lists, for intermediate nodes 1..N, one ``(activation, predecessor)`` pair each: node i reads
state j < i (0 is the cell's first state s0, computed from x_t and h_{t-1}) through its own weight matrix and the
activation. ``concat`` names the states averaged into the cell output (DARTS: all of 1..8). Papers publish it as
``Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ...], concat=range(1, 9))``, which this module reads (with the
same code-free literal parser as the CNN genotypes) and writes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DartsNasError
from .text import _is_int, _short, literal_fields, read_text_file, spec_string

# Column order of the recurrent alphas; "none" is a search-only candidate.
RNN_PRIMITIVES: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
RNN_OPS: tuple[str, ...] = RNN_PRIMITIVES[1:]
_FIELDS = ("recurrent", "concat")


@dataclass(frozen=True)
class RecurrentGenotype:

    space = "darts-rnn"  # the search space whose cells this type describes (the "space" key of its JSON form)

    @staticmethod
    def load(spec) -> "RecurrentGenotype":
        """A published name, a run directory, a genotype file, or pasted text, as this type."""
        return load_recurrent_genotype(spec)

    recurrent: tuple[tuple[str, int], ...]
    concat: tuple[int, ...]

    def __post_init__(self):
        cell = self.recurrent
        if isinstance(cell, (str, bytes)) or not isinstance(cell, (list, tuple)) or not cell:
            raise DartsNasError(f"recurrent: expected a non-empty list of (op, input) pairs, got {_short(cell)}")
        out = []
        for i, e in enumerate(cell):
            if not (isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str) and _is_int(e[1])):
                raise DartsNasError(f"recurrent[{i}]: expected an (op, input) pair, got {_short(e)}")
            op, j = e[0], int(e[1])
            if op not in RNN_OPS:
                raise DartsNasError(f"recurrent[{i}]: unknown recurrent op {op!r} (known: {', '.join(RNN_OPS)})")
            if not 0 <= j <= i:
                raise DartsNasError(f"recurrent[{i}]: node {i + 1} can read states 0..{i}, got input {j}")
            out.append((op, j))
        concat = self.concat
        if isinstance(concat, range):
            concat = list(concat)
        if not isinstance(concat, (list, tuple)) or not concat or not all(_is_int(k) for k in concat):
            raise DartsNasError(f"concat: expected a non-empty list of state indices, got {_short(concat)}")
        bad = [k for k in concat if not 0 <= k <= len(out)]
        if bad or len(set(concat)) != len(concat):
            raise DartsNasError(f"concat: states must be distinct and within 0..{len(out)}, got {list(concat)}")
        object.__setattr__(self, "recurrent", tuple(out))
        object.__setattr__(self, "concat", tuple(int(k) for k in concat))

    @property
    def steps(self) -> int:
        return len(self.recurrent)

    def graphs(self) -> list:
        """The recurrent cell as drawings see it: x_t and h_{t-1} into node 0, each node i reading one earlier
        node through its activation, h_t the average of the concatenated nodes."""
        from .graph import CellGraph

        nodes = tuple(str(i) for i in range(self.steps + 1))
        edges = [("x_{t}", "0", ""), ("h_{t-1}", "0", "")]
        edges += [(str(j), str(i + 1), op) for i, (op, j) in enumerate(self.recurrent)]
        edges += [(str(k), "h_{t}", "") for k in self.concat]
        return [CellGraph("recurrent", ("x_{t}", "h_{t-1}"), nodes, "h_{t}", tuple(edges), "average")]

    def to_text(self) -> str:
        cell = ", ".join(f"('{op}', {j})" for op, j in self.recurrent)
        c = self.concat
        concat = (f"range({c[0]}, {c[-1] + 1})" if list(c) == list(range(c[0], c[-1] + 1)) and len(c) > 1
                  else str(list(c)))
        return f"Genotype(recurrent=[{cell}], concat={concat})"

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict:
        return {"space": "darts-rnn", "recurrent": [[op, j] for op, j in self.recurrent], "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, d: Any) -> "RecurrentGenotype":
        if not isinstance(d, dict):
            raise DartsNasError(f"recurrent genotype: expected a JSON object, got {type(d).__name__}")
        d = {k: v for k, v in d.items() if k != "space"}
        _check_fields(d.keys())
        return cls(d["recurrent"], d["concat"])

    @classmethod
    def from_text(cls, text: str) -> "RecurrentGenotype":
        fields = literal_fields(text, "Genotype")
        _check_fields(fields.keys())
        return cls(fields["recurrent"], fields["concat"])


def _check_fields(keys) -> None:
    keys = list(keys)
    if sorted(keys) != sorted(_FIELDS):
        if "normal" in keys:
            raise DartsNasError("this is a CNN genotype (normal/reduce cells); a language model needs a recurrent "
                                "one: Genotype(recurrent=[...], concat=...)")
        raise DartsNasError(f"recurrent genotype: fields must be {', '.join(_FIELDS)}, got {', '.join(keys) or 'none'}")


def derive_recurrent(weights, primitives: Sequence[str] = RNN_PRIMITIVES, steps: int = 8) -> RecurrentGenotype:
    """The DARTS rule for a recurrent cell from op weights ``[steps*(steps+1)/2, ops]`` (node i's rows are its
    predecessors 0..i-1, in order): each node keeps the single predecessor whose strongest non-``none`` op is
    strongest, with that op. The output averages all intermediate nodes."""
    w = torch.as_tensor(weights).detach().to(torch.float64).cpu()
    if w.shape != (steps * (steps + 1) // 2, len(primitives)):
        raise DartsNasError(f"recurrent op weights must be [{steps * (steps + 1) // 2}, {len(primitives)}], "
                            f"got {list(w.shape)}")
    ops = [k for k, p in enumerate(primitives) if p != "none"]
    gene, start = [], 0
    for i in range(steps):
        rows = w[start: start + i + 1][:, ops]
        best_per_input, best_op = rows.max(dim=1)
        j = int(best_per_input.argmax())  # first index on ties, as a stable sort would give
        gene.append((primitives[ops[int(best_op[j])]], j))
        start += i + 1
    return RecurrentGenotype(gene, range(1, steps + 1))


DARTS_V1 = RecurrentGenotype(
    [('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), ('identity', 1), ('relu', 5), ('relu', 1)],
    range(1, 9))
DARTS_V2 = RecurrentGenotype(
    [('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), ('sigmoid', 5), ('tanh', 3),
     ('relu', 5)],
    range(1, 9))
ENAS = RecurrentGenotype(
    [('tanh', 0), ('tanh', 1), ('relu', 1), ('tanh', 3), ('tanh', 3), ('relu', 3), ('relu', 4), ('relu', 7),
     ('relu', 8), ('relu', 8), ('relu', 8)],
    [2, 5, 6, 9, 10, 11])
RECURRENT_PUBLISHED: dict[str, RecurrentGenotype] = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2,
                                                     "ENAS": ENAS}
_BY_KEY = {k.lower(): k for k in RECURRENT_PUBLISHED}


def _load_file(path: Path) -> RecurrentGenotype:
    content = read_text_file(path)
    try:
        if path.suffix.lower() == ".json" or content.lstrip().startswith("{"):
            try:
                return RecurrentGenotype.from_dict(json.loads(content))
            except json.JSONDecodeError as e:
                raise DartsNasError(f"not valid JSON: {e}") from None
        return RecurrentGenotype.from_text(content)
    except DartsNasError as e:
        raise DartsNasError(f"{path}: {e}") from None


def load_recurrent_genotype(spec) -> RecurrentGenotype:
    """A published name (DARTS_V1, DARTS_V2, ENAS), a search run directory, a genotype file, or paper text."""
    if isinstance(spec, RecurrentGenotype):
        return spec
    s = spec_string(spec)
    if not s:
        raise DartsNasError(f"empty genotype (give {', '.join(RECURRENT_PUBLISHED)}, a search run directory, a "
                            "genotype file or Genotype(recurrent=..., concat=...) text)")
    key = s.lower().replace("-", "_")
    if key in _BY_KEY:
        return RECURRENT_PUBLISHED[_BY_KEY[key]]
    if "(" in s:
        return RecurrentGenotype.from_text(s)
    p = Path(s).expanduser()
    if p.is_dir():
        if not (p / "genotype.json").is_file():
            raise DartsNasError(f"{p}: directory holds no genotype.json (is it a finished search run?)")
        return _load_file(p / "genotype.json")
    if p.is_file():
        return _load_file(p)
    raise DartsNasError(f"cannot load recurrent genotype {s!r}: not a published name "
                        f"({', '.join(RECURRENT_PUBLISHED)}), not an existing file or directory, and not "
                        "Genotype(recurrent=..., concat=...) text")
