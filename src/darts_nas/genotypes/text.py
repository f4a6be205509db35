"""The code-free reader every genotype format shares: ``Type(field=literal, ...)`` text parsed by a whitelist AST
walk (never ``eval``), plus the small helpers the genotype types use to check and quote what a user typed."""

from __future__ import annotations

import ast
import json
import numbers
import os
from pathlib import Path
from typing import Any

from ..errors import DartsNasError

_TEXT_LIMIT = 120  # how much of an offending snippet an error message quotes


def _is_int(x: Any) -> bool:
    """True for real integers; bool is excluded because ``True`` as an input index is always a typo."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _short(x: Any) -> str:
    s = repr(x)
    return s if len(s) <= _TEXT_LIMIT else s[:_TEXT_LIMIT] + "..."


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


def read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DartsNasError(f"{path}: cannot read genotype file ({e})") from None


def existing_path(spec: str) -> Path | None:
    try:
        p = Path(spec).expanduser()
        return p if p.exists() else None
    except (OSError, ValueError, RuntimeError):
        return None


def spec_string(spec, what: str = "genotype spec") -> str:
    """A genotype spec as a stripped string (paths allowed)."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise DartsNasError(f"{what} must be a string, got {type(spec).__name__}")
    return spec.strip()


def load_typed(spec, cls, not_this: str):
    """What every genotype type's loader does for a spec that is not a published name: a run directory's (or a
    file's) genotype.json, a file of its text form, or the text itself (``TypeName(...)``). `not_this` ends the
    message for a spec that is none of these."""
    s = spec_string(spec)
    path = None if "(" in s else existing_path(s)
    if path is None:
        if cls.__name__ in s:
            return cls.from_text(s)
        raise DartsNasError(f"{s}: {not_this}")
    target = path / "genotype.json" if path.is_dir() else path
    if not target.is_file():
        raise DartsNasError(f"{path}: directory holds no genotype.json (is it a finished search run?)")
    content = read_text_file(target)
    try:
        data = json.loads(content)
    except ValueError:
        return cls.from_text(content)
    try:
        return cls.from_dict(data)
    except DartsNasError as e:
        raise DartsNasError(f"{Path(target)}: {e}") from None
