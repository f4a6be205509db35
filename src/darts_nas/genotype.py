"""Discrete cell architectures (genotypes) of the DARTS CNN space.

A genotype is what a search produces and what an evaluation network is built from. Users copy genotypes out of
papers and logs as text (``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``), so this
module reads that exact format -- with a whitelist AST walk, never ``eval`` -- writes it back, stores it as JSON,
ships the published cells, and derives a genotype from relaxed op weights with the DARTS rule.
"""

from __future__ import annotations

import ast
import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import DartsNasError
from .fileio import atomic_write_text

__all__ = [
    "PRIMITIVES", "CNN_OPS", "Genotype", "parse_genotype", "literal_fields", "derive_cell", "derive_genotype",
    "PUBLISHED", "get_genotype", "load_genotype", "save_genotype",
    "DARTS_V1", "DARTS_V2", "DARTS", "NASNet", "AmoebaNet", "PC_DARTS", "PDARTS",
]

# Column order of alpha in the search network; changing it silently changes every derived genotype.
PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
# Ops an evaluation cell may use: the search ops without the zero op, plus the two NASNet/AmoebaNet-only ops.
CNN_OPS: tuple[str, ...] = PRIMITIVES[1:] + ("sep_conv_7x7", "conv_7x1_1x7")

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_TEXT_LIMIT = 120  # how much of an offending snippet an error message quotes


# ----------------------------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------------------------
def _is_int(x: Any) -> bool:
    """True for real integers; bool is excluded because ``True`` as an input index is always a typo."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _short(x: Any) -> str:
    s = repr(x)
    return s if len(s) <= _TEXT_LIMIT else s[:_TEXT_LIMIT] + "..."


def _normalize_cell(name: str, cell: Any) -> tuple[tuple[str, int], ...]:
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
                                f"(allowed: {', '.join(CNN_OPS)})")
        if op not in CNN_OPS:
            raise DartsNasError(f"{where}: unknown op {op!r} (known: {', '.join(CNN_OPS)})")
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

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        normal = _normalize_cell("normal", self.normal)
        reduce = _normalize_cell("reduce", self.reduce)
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "normal_concat", _normalize_concat("normal_concat", self.normal_concat,
                                                                    len(normal) // 2))
        object.__setattr__(self, "reduce_concat", _normalize_concat("reduce_concat", self.reduce_concat,
                                                                    len(reduce) // 2))

    def to_text(self) -> str:
        """The format papers publish, so a logged genotype can be pasted into other DARTS code bases."""
        return (f"Genotype(normal={_cell_text(self.normal)}, normal_concat={_concat_text(self.normal_concat)}, "
                f"reduce={_cell_text(self.reduce)}, reduce_concat={_concat_text(self.reduce_concat)})")

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict:
        """Plain lists and ints only, so ``json.dumps`` works and the file is diff-friendly."""
        return {
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
        _check_field_names("genotype dict", d.keys())
        return cls(**{k: d[k] for k in _FIELDS})

    @classmethod
    def from_text(cls, text: str) -> "Genotype":
        """Parse the paper format (optionally ``NAME = Genotype(...)``) without executing anything."""
        fields = literal_fields(text, "Genotype")
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
# ----------------------------------------------------------------------------------------------------------------
_NODE_NAMES = {
    ast.BinOp: "arithmetic", ast.BoolOp: "a boolean expression", ast.Compare: "a comparison",
    ast.Lambda: "a lambda", ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.Dict: "a dict", ast.Set: "a set", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression", ast.Subscript: "subscripting",
    ast.Attribute: "an attribute access", ast.Starred: "unpacking (*)", ast.IfExp: "a conditional expression",
    ast.NamedExpr: "an assignment expression", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}


def _not_allowed(text: str, node: ast.AST, what: str | None = None) -> DartsNasError:
    if what is None:
        what = _NODE_NAMES.get(type(node), type(node).__name__)
    seg = ast.get_source_segment(text, node) or ""
    if len(seg) > _TEXT_LIMIT:
        seg = seg[:_TEXT_LIMIT] + "..."
    where = f" `{seg}`" if seg else ""
    return DartsNasError(f"genotype text: {what}{where} is not allowed "
                         f"(only lists, tuples, strings, ints and range(a, b))")


def _call_name(func: ast.AST) -> str | None:
    """Dotted name of a call target made of names and attributes only (nothing is evaluated)."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    parts.append(func.id)
    return ".".join(reversed(parts))


def _int_literal(node: ast.AST) -> int | None:
    """An int constant, optionally signed (``-1`` is a UnaryOp in the AST); None if it is anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _literal(text: str, node: ast.AST) -> Any:
    """Convert a whitelisted AST node to a Python value; anything else is rejected, never evaluated."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str) or type(node.value) is int:
            return node.value
        raise _not_allowed(text, node, f"the constant {node.value!r}")
    if isinstance(node, ast.UnaryOp):
        v = _int_literal(node)
        if v is None:
            raise _not_allowed(text, node, "an operator")
        return v
    if isinstance(node, ast.List):
        return [_literal(text, e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(text, e) for e in node.elts)
    if isinstance(node, ast.Call):
        name = _call_name(node.func)
        if name != "range":
            label = f"a call to {name!r}" if name else "a call"
            raise _not_allowed(text, node, label)
        if node.keywords or not 1 <= len(node.args) <= 2:
            raise _not_allowed(text, node, "range with other than 1 or 2 positional int arguments")
        bounds = [_int_literal(a) for a in node.args]
        if any(b is None for b in bounds):
            raise _not_allowed(text, node, "range with non-int-constant arguments")
        return range(*bounds)
    if isinstance(node, ast.Name):
        raise _not_allowed(text, node, f"the name {node.id!r}")
    raise _not_allowed(text, node)


def literal_fields(text: str, type_name: str = "Genotype") -> dict:
    """Keyword fields of ``type_name(...)`` text as plain Python values (lists, tuples, str, int, range).

    Shared by every search space's genotype format. The text is parsed to an AST and only literal nodes are
    accepted, so pasting hostile text cannot run code. An optional ``NAME = `` prefix (as in the papers' source
    files) is allowed.
    """
    if not isinstance(text, str):
        raise DartsNasError(f"genotype text: expected a string, got {type(text).__name__}")
    src = text.strip()
    if not src:
        raise DartsNasError("malformed genotype text: empty")
    try:
        tree = ast.parse(src, mode="exec")
    except SyntaxError as e:
        pos = f" (line {e.lineno}, column {e.offset})" if e.lineno else ""
        raise DartsNasError(f"malformed genotype text: {e.msg}{pos}") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise DartsNasError(f"malformed genotype text: {e}") from None

    if len(tree.body) != 1:
        raise DartsNasError(f"genotype text: expected a single {type_name}(...) expression, "
                            f"got {len(tree.body)} statements")
    stmt = tree.body[0]
    if isinstance(stmt, ast.Expr):
        call = stmt.value
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        call = stmt.value
    else:
        raise DartsNasError(f"genotype text: expected {type_name}(...) or NAME = {type_name}(...), "
                            f"got a {type(stmt).__name__} statement")

    if not isinstance(call, ast.Call):
        raise _not_allowed(src, call, f"{_NODE_NAMES.get(type(call), type(call).__name__)} "
                                      f"where {type_name}(...) was expected;")
    name = _call_name(call.func)
    if name is None or name.split(".")[-1] != type_name:
        label = f"a call to {name!r}" if name else "a call"
        raise _not_allowed(src, call, f"{label} where {type_name}(...) was expected;")
    if call.args:
        raise DartsNasError(f"genotype text: {type_name}(...) takes keyword arguments only, got "
                            f"{len(call.args)} positional argument(s) "
                            f"(`{(ast.get_source_segment(src, call.args[0]) or '')[:_TEXT_LIMIT]}`)")
    fields: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise _not_allowed(src, kw.value, "**-unpacking")
        if kw.arg in fields:
            raise DartsNasError(f"genotype text: keyword {kw.arg!r} given twice")
        try:
            fields[kw.arg] = _literal(src, kw.value)
        except RecursionError:
            raise DartsNasError("malformed genotype text: nested too deeply") from None
    return fields


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
                    steps: int = 4) -> Genotype:
    """Both cells derived with :func:`derive_cell` (keep 2), concatenating every intermediate node as DARTS does."""
    cells = {}
    for name, weights in (("normal", weights_normal), ("reduce", weights_reduce)):
        try:
            cells[name] = derive_cell(weights, primitives, steps, 2)
        except DartsNasError as e:
            raise DartsNasError(f"{name} cell: {e}") from None
    normal, reduce = cells["normal"], cells["reduce"]
    concat = range(2, 2 + int(steps))
    return Genotype(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=concat)


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

PUBLISHED: dict[str, Genotype] = {
    "DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS, "NASNet": NASNet, "AmoebaNet": AmoebaNet,
    "PC_DARTS": PC_DARTS, "PDARTS": PDARTS,
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
# files
# ----------------------------------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DartsNasError(f"{path}: cannot read genotype file ({e})") from None


def _load_file(path: Path) -> Genotype:
    """A .json file (dict form) or a text file (paper format; JSON content is recognized too)."""
    content = _read_text(path)
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


def _existing(spec: str) -> Path | None:
    try:
        p = Path(spec).expanduser()
        return p if p.exists() else None
    except (OSError, ValueError, RuntimeError):
        return None


def load_genotype(spec: str) -> Genotype:
    """One entry point for every way a user names an architecture on the command line.

    Tried in order: a published name; an existing directory (a search run dir: ``genotype.json``, else
    ``genotype.txt``); an existing file (``.json`` dict form or paper-format text); paper-format text itself.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise DartsNasError(f"genotype spec must be a string, got {type(spec).__name__}")
    s = spec.strip()
    if not s:
        raise DartsNasError(f"empty genotype spec (give a published name: {', '.join(PUBLISHED)}; "
                            f"a genotype .json/.txt file; a search run directory; or Genotype(...) text)")
    if _name_key(s) in _BY_KEY:
        return get_genotype(s)
    looks_like_text = "(" in s or "=" in s or "\n" in s
    path = None if looks_like_text and "Genotype" in s else _existing(s)
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


def save_genotype(genotype, directory) -> None:
    """Write ``genotype.json`` (for machines) and ``genotype.txt`` (paper format, for people) into ``directory``;
    a NAS-Bench-201 cell (anything with ``to_dict``/``to_text``) is written the same way."""
    if not (hasattr(genotype, "to_dict") and hasattr(genotype, "to_text")):
        raise DartsNasError(f"save_genotype: expected a Genotype, got {type(genotype).__name__}")
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "genotype.json", json.dumps(genotype.to_dict(), indent=2) + "\n")
        atomic_write_text(d / "genotype.txt", genotype.to_text() + "\n")
    except OSError as e:
        raise DartsNasError(f"{d}: cannot write genotype ({e})") from None
