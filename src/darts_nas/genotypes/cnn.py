"""Discrete cell architectures (genotypes) of the DARTS CNN space (Liu, Simonyan and Yang, arXiv:1806.09055).

A genotype is what a search produces and what an evaluation network is built from. Users copy genotypes out of
papers and logs as text (``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``), so this
module reads that exact format -- with a whitelist AST walk, never ``eval`` -- writes it back, stores it as JSON,
ships the published cells, and derives a genotype from relaxed op weights with the DARTS rule.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DartsNasError
from .text import _is_int, _short, existing_path, literal_fields, read_text_file, spec_string

__all__ = [
    "PRIMITIVES", "CNN_OPS", "Genotype", "parse_genotype", "literal_fields", "derive_cell", "derive_genotype",
    "PUBLISHED", "get_genotype", "load_cnn_genotype", "PARAMETER_FREE",
    "DARTS_V1", "DARTS_V2", "DARTS", "NASNet", "AmoebaNet", "PC_DARTS", "PDARTS", "SharpGenotype", "SHARP_DARTS",
    "SHARPSEPCONV_DARTS", "SHARPER_MAX_W",
]

# Column order of alpha in the search network; changing it silently changes every derived genotype.
PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
# Ops an evaluation cell may use: the search ops without the zero op, plus the two NASNet/AmoebaNet-only ops.
CNN_OPS: tuple[str, ...] = PRIMITIVES[1:] + ("sep_conv_7x7", "conv_7x1_1x7")
# Ops without weights: a derived cell full of them is DARTS' collapse.
PARAMETER_FREE = frozenset({"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


# ----------------------------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------------------------
def _normalize_cell(name: str, cell: Any, allowed: Sequence[str] = CNN_OPS,
                    hint: str = "") -> tuple[tuple[str, int], ...]:
    """Check one cell's edge list and return it as a tuple of (op, input) pairs.

    Errors name the field, the entry index and the rule broken, because genotypes are typed or pasted by hand.
    """
    if isinstance(cell, (str, bytes)) or not isinstance(cell, (list, tuple)):
        raise DartsNasError(f"{name}: must be a list of (op, input) pairs, got {_short(cell)}")
    n = len(cell)
    if n == 0:
        raise DartsNasError(f"{name}: empty; a cell needs at least one node (2 entries)")
    if n % 2:
        raise DartsNasError(f"{name}: {n} entries; a cell lists 2 inputs per node (even length)")
    out = []
    for k, entry in enumerate(cell):
        where = f"{name}[{k}]"
        if isinstance(entry, (str, bytes)) or not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise DartsNasError(f"{where}: entry must be an (op, input) pair, got {_short(entry)}")
        op, j = entry
        if not isinstance(op, str):
            raise DartsNasError(f"{where}: op must be a string, got {_short(op)}")
        if op == "none":
            raise DartsNasError(f"{where}: 'none' (the zero op) is search-only and cannot appear in a genotype "
                                f"(allowed: {', '.join(allowed)})")
        if op not in allowed:
            raise DartsNasError(f"{where}: unknown op {op!r} (known: {', '.join(allowed)}){hint}")
        if not _is_int(j):
            raise DartsNasError(f"{where}: input index must be an int (not bool), got {_short(j)}")
        j = int(j)
        node = k // 2
        if j < 0:
            raise DartsNasError(f"{where} = ({op!r}, {j}): input index is negative; "
                                f"node {node} can take inputs 0..{node + 1} only")
        if j >= node + 2:
            raise DartsNasError(f"{where} = ({op!r}, {j}): node {node} can take inputs 0..{node + 1} only")
        out.append((op, j))
    return tuple(out)


def _normalize_concat(name: str, concat: Any, nodes: int) -> tuple[int, ...]:
    """Check a concat list (``range(a, b)`` or ints) against the cell's node count; keep the given order."""
    if isinstance(concat, range):
        concat = list(concat)
    if isinstance(concat, (str, bytes)) or not isinstance(concat, (list, tuple)):
        raise DartsNasError(f"{name}: must be range(a, b) or a list of ints, got {_short(concat)}")
    if not concat:
        raise DartsNasError(f"{name}: empty; a cell must output at least one node")
    seen: set[int] = set()
    out = []
    for k, s in enumerate(concat):
        if not _is_int(s):
            raise DartsNasError(f"{name}[{k}]: must be an int (not bool), got {_short(s)}")
        s = int(s)
        if not 2 <= s < 2 + nodes:
            raise DartsNasError(f"{name}: {s} is not a node of a {nodes}-node cell (allowed 2..{nodes + 1})")
        if s in seen:
            raise DartsNasError(f"{name}: {s} is listed twice")
        seen.add(s)
        out.append(s)
    return tuple(out)


def _concat_text(concat: tuple[int, ...]) -> str:
    """``range(a, b)`` when contiguous ascending, as the papers print it; otherwise an explicit list."""
    a = concat[0]
    if concat == tuple(range(a, a + len(concat))):
        return f"range({a}, {a + len(concat)})"
    return "[" + ", ".join(str(s) for s in concat) + "]"


def _cell_text(cell: tuple[tuple[str, int], ...]) -> str:
    return "[" + ", ".join(f"({op!r}, {j})" for op, j in cell) + "]"


# ----------------------------------------------------------------------------------------------------------------
# the genotype
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell: per node two (op, input state) pairs, plus the states concatenated as output.

    Immutable and validated on construction, so an invalid architecture fails here with a precise message instead
    of deep inside network construction.
    """

    space = "darts-cnn"  # the search space whose cells this type describes (the "space" key of its JSON form)
    network = None       # no network of its own: the CIFAR or the ImageNet network, by the dataset
    op_family = "darts"  # whose implementations the op names mean (darts_nas.nets.cell.OP_FAMILIES)
    allowed_ops = CNN_OPS
    op_hint = "; sharpDARTS' ops (flood, choke, ...) go in SharpGenotype(...)"

    @staticmethod
    def load(spec) -> "Genotype":
        """A published name, a run directory, a genotype file, or pasted text, as this type."""
        return load_cnn_genotype(spec)

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        normal = _normalize_cell("normal", self.normal, self.allowed_ops, self.op_hint)
        reduce = _normalize_cell("reduce", self.reduce, self.allowed_ops, self.op_hint)
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "normal_concat", _normalize_concat("normal_concat", self.normal_concat,
                                                                    len(normal) // 2))
        object.__setattr__(self, "reduce_concat", _normalize_concat("reduce_concat", self.reduce_concat,
                                                                    len(reduce) // 2))

    def graphs(self) -> list:
        """The normal and the reduction cell as drawings see them (:class:`~.graph.CellGraph`): inputs
        c_{k-2} and c_{k-1}, nodes 0..n-1 with two (input, op) edges each, the concatenation c_{k}."""
        from .graph import CellGraph

        out = []
        for name, cell, concat in (("normal", self.normal, self.normal_concat),
                                   ("reduce", self.reduce, self.reduce_concat)):
            label = {0: "c_{k-2}", 1: "c_{k-1}"}
            nodes = tuple(str(i) for i in range(len(cell) // 2))
            edges = [(label.get(j, str(j - 2)), str(i // 2), op) for i, (op, j) in enumerate(cell)]
            edges += [(label.get(k, str(k - 2)), "c_{k}", "") for k in concat]
            out.append(CellGraph(name, ("c_{k-2}", "c_{k-1}"), nodes, "c_{k}", tuple(edges)))
        return out

    def to_text(self) -> str:
        """The format papers publish, so a logged genotype can be pasted into other DARTS code bases."""
        return (f"{type(self).__name__}(normal={_cell_text(self.normal)}, normal_concat={_concat_text(self.normal_concat)}, "
                f"reduce={_cell_text(self.reduce)}, reduce_concat={_concat_text(self.reduce_concat)})")

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict:
        """Plain lists and ints only, so ``json.dumps`` works and the file is diff-friendly. A subclass's form
        names its space (DARTS' own has no "space" key)."""
        return {
            **({} if type(self) is Genotype else {"space": self.space}),
            "normal": [[op, j] for op, j in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, j] for op, j in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Genotype":
        """Inverse of :meth:`to_dict`; exact key set required so a typo'd key is not silently ignored."""
        if not isinstance(d, dict):
            raise DartsNasError(f"genotype dict: expected a JSON object with keys {', '.join(_FIELDS)}, "
                                f"got {type(d).__name__}")
        if cls is Genotype and d.get("space") == SharpGenotype.space:
            cls = SharpGenotype  # the type the record names
        if cls is not Genotype and d.get("space") == cls.space:
            d = {k: v for k, v in d.items() if k != "space"}
        _check_field_names("genotype dict", d.keys())
        return cls(**{k: d[k] for k in _FIELDS})

    @classmethod
    def from_text(cls, text: str) -> "Genotype":
        """Parse the paper format (optionally ``NAME = Genotype(...)``) without executing anything."""
        if cls is Genotype and isinstance(text, str) and "SharpGenotype" in text.split("(", 1)[0]:
            cls = SharpGenotype  # the type the text names (sharpDARTS' ops)
        fields = literal_fields(text, cls.__name__)
        _check_field_names("genotype text", fields.keys())
        return cls(**fields)


def _check_field_names(where: str, keys) -> None:
    keys = list(keys)
    if "recurrent" in keys:
        raise DartsNasError(f"{where}: this is a recurrent cell (Genotype(recurrent=..., concat=...)); it builds a "
                            "language model: darts-nas train --preset darts-ptb-eval --genotype ...")
    bad = [k for k in keys if k not in _FIELDS]
    if bad:
        raise DartsNasError(f"{where}: unknown field(s) {', '.join(repr(k) for k in bad)} "
                            f"(fields: {', '.join(_FIELDS)})")
    missing = [k for k in _FIELDS if k not in keys]
    if missing:
        raise DartsNasError(f"{where}: missing field(s) {', '.join(repr(k) for k in missing)} "
                            f"(fields: {', '.join(_FIELDS)})")


# ----------------------------------------------------------------------------------------------------------------
# safe text parsing



def parse_genotype(text: str) -> Genotype:
    """Paper-format text -> :class:`Genotype` (see :meth:`Genotype.from_text`)."""
    return Genotype.from_text(text)


# ----------------------------------------------------------------------------------------------------------------
# derivation
# ----------------------------------------------------------------------------------------------------------------
def derive_cell(weights, primitives: Sequence[str] = PRIMITIVES, steps: int = 4,
                keep: int = 2) -> list[tuple[str, int]]:
    """The DARTS discretization of one cell from relaxed op weights ``[E, K]`` (rows: edges, columns: primitives).

    Per node, incoming edges are ranked by their strongest non-``none`` op weight and the ``keep`` best are kept,
    strongest first (ties: lower input state); each kept edge takes its argmax op excluding ``none`` (ties: earlier
    primitive). No softmax is applied here: the caller decides the relaxation, ranking on raw alphas is a known bug.
    The comparison runs in float64 Python numbers, so ties are exact and the result does not depend on device.
    """
    if not _is_int(steps) or steps < 1:
        raise DartsNasError(f"steps must be a positive int, got {_short(steps)}")
    if not _is_int(keep) or not 1 <= keep <= 2:
        raise DartsNasError(f"keep must be 1 or 2 (node 0 has only 2 inputs), got {_short(keep)}")
    primitives = tuple(primitives)
    if not primitives or not all(isinstance(p, str) for p in primitives):
        raise DartsNasError(f"primitives must be a non-empty sequence of op names, got {_short(primitives)}")
    candidates = [k for k, p in enumerate(primitives) if p != "none"]
    if not candidates:
        raise DartsNasError("primitives: every op is 'none'; nothing to derive")
    if not isinstance(weights, torch.Tensor):
        try:
            weights = torch.as_tensor(weights)
        except (TypeError, ValueError, RuntimeError) as e:
            raise DartsNasError(f"weights: expected a tensor [edges, ops], got {type(weights).__name__} ({e})") \
                from None
    if weights.is_complex():
        raise DartsNasError(f"weights: complex dtype {weights.dtype} is not supported")
    steps, keep = int(steps), int(keep)
    n_edges = steps * (steps + 3) // 2  # sum_{i<steps} (i + 2)
    want = (n_edges, len(primitives))
    if tuple(weights.shape) != want:
        raise DartsNasError(f"weights: shape {tuple(weights.shape)}; a {steps}-node cell with {len(primitives)} "
                            f"primitives needs {want}")
    w = weights.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(w).all()):
        raise DartsNasError("weights: contain NaN or infinity")
    rows = w.tolist()

    cell: list[tuple[str, int]] = []
    offset = 0
    for i in range(steps):
        n_in = i + 2
        best = []  # per incoming edge: (strength, op index)
        for j in range(n_in):
            row = rows[offset + j]
            k_best = candidates[0]
            for k in candidates[1:]:
                if row[k] > row[k_best]:  # strict: ties keep the earlier primitive
                    k_best = k
            best.append((row[k_best], k_best))
        ranked = sorted(range(n_in), key=lambda j: (-best[j][0], j))  # stable order: ties -> lower state
        cell.extend((primitives[best[j][1]], j) for j in ranked[:keep])
        offset += n_in
    return cell


def derive_genotype(weights_normal, weights_reduce, primitives: Sequence[str] = PRIMITIVES,
                    steps: int = 4, kind: type | None = None) -> Genotype:
    """Both cells derived with :func:`derive_cell` (keep 2), concatenating every intermediate node as DARTS does;
    `kind` the cell-pair type (default :class:`Genotype`; :class:`SharpGenotype` for sharpDARTS' ops)."""
    cells = {}
    for name, weights in (("normal", weights_normal), ("reduce", weights_reduce)):
        try:
            cells[name] = derive_cell(weights, primitives, steps, 2)
        except DartsNasError as e:
            raise DartsNasError(f"{name} cell: {e}") from None
    normal, reduce = cells["normal"], cells["reduce"]
    concat = range(2, 2 + int(steps))
    return (kind or Genotype)(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=concat)


# ----------------------------------------------------------------------------------------------------------------
# published cells
# ----------------------------------------------------------------------------------------------------------------
DARTS_V1 = Genotype(
    normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1),
            ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0),
            ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)],
    reduce_concat=[2, 3, 4, 5])
DARTS_V2 = Genotype(
    normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
            ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
            ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)],
    reduce_concat=[2, 3, 4, 5])
DARTS = DARTS_V2
NASNet = Genotype(
    normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0),
            ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0),
            ('sep_conv_3x3', 1), ('skip_connect', 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0),
            ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2),
            ('sep_conv_3x3', 2), ('max_pool_3x3', 1)],
    reduce_concat=[4, 5, 6])
AmoebaNet = Genotype(
    normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2),
            ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1),
            ('skip_connect', 0), ('avg_pool_3x3', 1)],
    normal_concat=[4, 5, 6],
    reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2),
            ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1),
            ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)],
    reduce_concat=[3, 4, 6])
PC_DARTS = Genotype(
    normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1),
            ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)],
    normal_concat=range(2, 6),
    reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2),
            ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)],
    reduce_concat=range(2, 6))
PDARTS = Genotype(
    normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1),
            ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)],
    normal_concat=range(2, 6),
    reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2),
            ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)],
    reduce_concat=range(2, 6))

# UNAS (Vahdat et al., arXiv:1912.07651): the cells its authors publish for CIFAR-10, CIFAR-100 and ImageNet, found in
# its DARTS-style space (7 ops without `none`, two (input, op) slots per node; darts_nas.spaces.unas_darts).
# Read from the authors' genotype indices (NVlabs/unas @cdd19b9, darts/genotypes.py), decoded to op names.
UNAS_CIFAR10 = Genotype(
    normal=[('sep_conv_5x5', 0), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 1),
            ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0)],
    normal_concat=range(2, 6),
    reduce=[('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('skip_connect', 1), ('sep_conv_3x3', 0),
            ('avg_pool_3x3', 1), ('skip_connect', 0), ('sep_conv_5x5', 3), ('avg_pool_3x3', 1)],
    reduce_concat=range(2, 6))
UNAS_CIFAR100 = Genotype(
    normal=[('sep_conv_3x3', 0), ('dil_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_3x3', 0),
            ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0)],
    normal_concat=range(2, 6),
    reduce=[('sep_conv_7x7', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0),
            ('sep_conv_7x7', 1), ('dil_conv_3x3', 0), ('dil_conv_3x3', 0), ('sep_conv_3x3', 3)],
    reduce_concat=range(2, 6))
UNAS_IMAGENET = Genotype(
    normal=[('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 0), ('skip_connect', 1),
            ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1)],
    normal_concat=range(2, 6),
    reduce=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1),
            ('sep_conv_5x5', 1), ('dil_conv_3x3', 0), ('dil_conv_3x3', 3), ('sep_conv_3x3', 1)],
    reduce_concat=range(2, 6))



@dataclass(frozen=True)
class SharpGenotype(Genotype):
    """A cell pair of the sharpDARTS spaces (Hundt, Jain, Hager, arXiv:1903.09900): DARTS' format, but the op
    names are sharpDARTS' (:mod:`darts_nas.ops.sharp`: sep/dil/flood/choke convolutions are SharpSepConvs, pools
    ResizablePools), so it prints as ``SharpGenotype(normal=..., ...)`` and its JSON names the space."""

    space = "sharp-darts"
    op_family = "sharp"
    allowed_ops = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
                   "dil_conv_3x3", "dil_conv_5x5", "flood_conv_3x3", "flood_conv_5x5", "dil_flood_conv_3x3",
                   "choke_conv_3x3", "dil_choke_conv_3x3")
    op_hint = ""


# sharpDARTS' published cells, read as data from the authors' genotypes.py (ahundt/sharpDARTS @6f593d4).
# SHARP_DARTS: the sharpDARTS-space search (paper: 2.29% CIFAR-10 error with AutoAugment, 1.98M parameters);
# SHARPSEPCONV_DARTS: DARTS' op set with every conv a SharpSepConv (1.98%, 3.6M); the others from the "sharper"
# space with Max-W or plain (scalar) weighting, and sharpDARTS' space with Max-W.
SHARP_DARTS = SharpGenotype(
    normal=[("choke_conv_3x3", 0), ("choke_conv_3x3", 1), ("skip_connect", 0), ("choke_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("skip_connect", 1)],
    normal_concat=range(2, 6),
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("flood_conv_3x3", 0)],
    reduce_concat=range(2, 6))
SHARPSEPCONV_DARTS = SharpGenotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1)],
    normal_concat=range(2, 6),
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("skip_connect", 2), ("avg_pool_3x3", 0),
            ("skip_connect", 2), ("avg_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 3)],
    reduce_concat=range(2, 6))
SHARPSEPCONV_DARTS_MAX_W = SharpGenotype(  # the authors' file assigns this name twice; the later one is kept
    normal=[("dil_conv_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 1),
            ("avg_pool_3x3", 2), ("sep_conv_3x3", 0), ("avg_pool_3x3", 4), ("max_pool_3x3", 3)],
    normal_concat=range(2, 6),
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_5x5", 0), ("skip_connect", 2),
            ("sep_conv_5x5", 0), ("dil_conv_5x5", 3), ("sep_conv_5x5", 4), ("skip_connect", 3)],
    reduce_concat=range(2, 6))
SHARP_DARTS_MAX_W = SharpGenotype(
    normal=[("sep_conv_3x3", 0), ("choke_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
            ("dil_flood_conv_3x3", 3), ("flood_conv_3x3", 0), ("dil_flood_conv_3x3", 0), ("flood_conv_3x3", 3)],
    normal_concat=range(2, 6),
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("dil_choke_conv_3x3", 0), ("dil_flood_conv_3x3", 2),
            ("dil_conv_3x3", 0), ("skip_connect", 3), ("flood_conv_3x3", 0), ("skip_connect", 3)],
    reduce_concat=range(2, 6))
SHARPER_SCALAR = SharpGenotype(
    normal=[("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("dil_flood_conv_3x3", 3), ("flood_conv_3x3", 1), ("dil_flood_conv_3x3", 3), ("dil_conv_3x3", 4)],
    normal_concat=range(2, 6),
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("skip_connect", 1), ("avg_pool_3x3", 0),
            ("avg_pool_3x3", 1), ("dil_flood_conv_3x3", 0), ("flood_conv_3x3", 3), ("skip_connect", 4)],
    reduce_concat=range(2, 6))
SHARPER_MAX_W = SharpGenotype(
    normal=[("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
            ("avg_pool_3x3", 3), ("flood_conv_3x3", 0), ("flood_conv_3x3", 1), ("skip_connect", 2)],
    normal_concat=range(2, 6),
    reduce=[("flood_conv_5x5", 0), ("dil_flood_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
            ("sep_conv_3x3", 0), ("skip_connect", 2), ("dil_conv_5x5", 4), ("sep_conv_3x3", 0)],
    reduce_concat=range(2, 6))

PUBLISHED: dict[str, Genotype] = {
    "DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS, "NASNet": NASNet, "AmoebaNet": AmoebaNet,
    "PC_DARTS": PC_DARTS, "PDARTS": PDARTS, "UNAS_CIFAR10": UNAS_CIFAR10, "UNAS_CIFAR100": UNAS_CIFAR100,
    "UNAS_IMAGENET": UNAS_IMAGENET, "SHARP_DARTS": SHARP_DARTS, "SHARPSEPCONV_DARTS": SHARPSEPCONV_DARTS,
    "SHARPSEPCONV_DARTS_MAX_W": SHARPSEPCONV_DARTS_MAX_W, "SHARP_DARTS_MAX_W": SHARP_DARTS_MAX_W,
    "SHARPER_SCALAR": SHARPER_SCALAR, "SHARPER_MAX_W": SHARPER_MAX_W,
}


def _name_key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


_BY_KEY = {_name_key(k): k for k in PUBLISHED}


def get_genotype(name: str) -> Genotype:
    """A published genotype by name; case and '-'/'_' are forgiven because people type these from memory."""
    if not isinstance(name, str):
        raise DartsNasError(f"genotype name must be a string, got {type(name).__name__}")
    key = _BY_KEY.get(_name_key(name))
    if key is None:
        raise DartsNasError(f"unknown genotype {name!r} (known: {', '.join(PUBLISHED)})")
    return PUBLISHED[key]


# ----------------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------------
def _load_file(path: Path) -> Genotype:
    """A .json file (dict form) or a text file (paper format; JSON content is recognized too)."""
    content = read_text_file(path)
    try:
        if path.suffix.lower() == ".json" or content.lstrip().startswith("{"):
            try:
                data = json.loads(content)
            except json.JSONDecodeError as e:
                raise DartsNasError(f"not valid JSON: {e}") from None
            if isinstance(data, dict) and data.get("space") == "darts-rnn":
                raise DartsNasError("holds a recurrent cell, not a CNN genotype; it builds a language model: "
                                    "darts-nas train --preset darts-ptb-eval --genotype ...")
            if isinstance(data, dict) and data.get("space") == "nb201":
                raise DartsNasError("holds a NAS-Bench-201 cell, not a DARTS CNN genotype; its accuracy is in the "
                                    "benchmark table: `darts-nas nb201 lookup RUN_DIR --table FILE`")
            return Genotype.from_dict(data)
        return Genotype.from_text(content)
    except DartsNasError as e:
        raise DartsNasError(f"{path}: {e}") from None



def load_cnn_genotype(spec) -> Genotype:
    """One entry point for every way a user names an architecture on the command line.

    Tried in order: a published name; an existing directory (a search run dir: ``genotype.json``, else
    ``genotype.txt``); an existing file (``.json`` dict form or paper-format text); paper-format text itself.
    """
    if isinstance(spec, Genotype):
        return spec
    s = spec_string(spec)
    if not s:
        raise DartsNasError(f"empty genotype spec (give a published name: {', '.join(PUBLISHED)}; "
                            f"a genotype .json/.txt file; a search run directory; or Genotype(...) text)")
    if _name_key(s) in _BY_KEY:
        return get_genotype(s)
    looks_like_text = "(" in s or "=" in s or "\n" in s
    path = None if looks_like_text and "Genotype" in s else existing_path(s)
    if path is not None:
        if path.is_dir():
            for fname in ("genotype.json", "genotype.txt"):
                if (path / fname).is_file():
                    return _load_file(path / fname)
            raise DartsNasError(f"{path}: directory holds neither genotype.json nor genotype.txt "
                                f"(is it a finished search run?)")
        return _load_file(path)
    if looks_like_text:
        return Genotype.from_text(s)
    if s.lower().endswith((".json", ".txt")) or os.sep in s or "/" in s:
        raise DartsNasError(f"genotype file not found: {s}")
    raise DartsNasError(f"cannot load genotype {s!r}: not a published name (known: {', '.join(PUBLISHED)}), "
                        f"not an existing file or directory, and not Genotype(...) text")
