"""The architecture of sharpDARTS' Differentiable Hyperparameter Grid Search (arXiv:1903.09900): a path through
the HyperCuboid, i.e. a plain chain of convolution and pooling blocks whose strides, widths and ops the search chose.

``HyperPath(stem=32, steps=[(1, 32, 64, 'SharpSepConv'), (2, 64, 64, 'ResizablePool'), ...])``: the stem's output
channels, then per step (stride, input channels, output channels, op). The HyperCuboid's layers each give two
steps, a stride-1 one and a stride-2 one; the channels must chain (each step reads what the one before wrote).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DartsNasError
from .text import _is_int, literal_fields, load_typed

HYPER_OPS: tuple[str, ...] = ("ResizablePool", "SharpSepConv")


@dataclass(frozen=True)
class HyperPath:
    """A stem width and the chain of (stride, c_in, c_out, op) steps after it."""

    space = "hypercuboid"
    network = "hyperpath"

    stem: int
    steps: tuple[tuple[int, int, int, str], ...]

    @staticmethod
    def load(spec) -> "HyperPath":
        return load_hyper_path(spec)

    def __post_init__(self):
        if not _is_int(self.stem) or self.stem < 1:
            raise DartsNasError(f"HyperPath stem must be a positive channel count, got {self.stem!r}")
        if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, (list, tuple)) or not self.steps:
            raise DartsNasError("HyperPath steps must be a non-empty list of (stride, c_in, c_out, op)")
        steps, channels = [], int(self.stem)
        for k, step in enumerate(self.steps):
            if isinstance(step, (str, bytes)) or not isinstance(step, (list, tuple)) or len(step) != 4:
                raise DartsNasError(f"HyperPath steps[{k}]: expected (stride, c_in, c_out, op), got {step!r}")
            stride, c_in, c_out, op = step
            if not (_is_int(stride) and stride in (1, 2)):
                raise DartsNasError(f"HyperPath steps[{k}]: stride must be 1 or 2, got {stride!r}")
            if not (_is_int(c_in) and _is_int(c_out) and c_in > 0 and c_out > 0):
                raise DartsNasError(f"HyperPath steps[{k}]: channel counts must be positive integers")
            if c_in != channels:
                raise DartsNasError(f"HyperPath steps[{k}] reads {c_in} channels but the step before writes "
                                    f"{channels}")
            if op not in HYPER_OPS:
                raise DartsNasError(f"HyperPath steps[{k}]: unknown op {op!r} (known: {', '.join(HYPER_OPS)})")
            steps.append((int(stride), int(c_in), int(c_out), op))
            channels = int(c_out)
        object.__setattr__(self, "stem", int(self.stem))
        object.__setattr__(self, "steps", tuple(steps))

    @property
    def out_channels(self) -> int:
        return self.steps[-1][2]

    def graphs(self) -> list:
        """The path as a chain: stem, each step labelled with its op, stride and widths, the head."""
        from .graph import CellGraph

        nodes = tuple(f"step {k + 1}" for k in range(len(self.steps)))
        edges, prev = [], "stem"
        for (stride, c_in, c_out, op), node in zip(self.steps, nodes):
            edges.append((prev, node, f"{op} s{stride} {c_in}->{c_out}"))
            prev = node
        edges.append((prev, "head", "SharpSepConv"))
        return [CellGraph("path", ("stem",), nodes, "head", tuple(edges), "pool + classifier")]

    def to_text(self) -> str:
        return (f"HyperPath(stem={self.stem}, steps=[" +
                ", ".join(f"({s}, {a}, {b}, {op!r})" for s, a, b, op in self.steps) + "])")

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "HyperPath":
        fields = literal_fields(str(text), "HyperPath")
        if set(fields) != {"stem", "steps"}:
            raise DartsNasError("HyperPath(...) takes two fields, stem=... and steps=[...]")
        return cls(fields["stem"], fields["steps"])

    def to_dict(self) -> dict:
        return {"space": self.space, "stem": self.stem, "steps": [list(s) for s in self.steps]}

    @classmethod
    def from_dict(cls, d) -> "HyperPath":
        if not isinstance(d, dict) or d.get("space") != cls.space or not {"stem", "steps"} <= set(d):
            raise DartsNasError('not a HyperCuboid path record (expected {"space": "hypercuboid", "stem": ..., '
                                '"steps": [...]})')
        return cls(d["stem"], [tuple(s) if isinstance(s, list) else s for s in d["steps"]])

    def parameter_free_ops(self) -> int:
        """Pooling steps that keep the width (no weights)."""
        return sum(op == "ResizablePool" and a == b for _, a, b, op in self.steps)


def load_hyper_path(spec) -> HyperPath:
    """A search run directory's (or file's) genotype.json, or ``HyperPath(...)`` text."""
    if isinstance(spec, HyperPath):
        return spec
    return load_typed(spec, HyperPath, "not a HyperCuboid search run directory, file or HyperPath(...) text")
