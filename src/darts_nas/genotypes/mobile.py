"""Architectures of the ProxylessNAS / MobileNetV2 space (ProxylessNAS, arXiv:1812.00332; searched by UNAS,
arXiv:1912.07651): the op of each of the 21 searchable layers, the fixed skeleton they sit in, and the published
architectures.

The skeleton (input 224 x 224 on ImageNet): a 3x3 stride-2 conv to 40 channels, an MBConv (k3, e1) to 24, then 21
searchable layers in 6 stages of output channels 32, 56, 112, 128, 256, 432 (layers 1-4, 5-8, 9-12, 13-16, 17-20,
21), a 1x1 conv to 1728, global pooling and the classifier. The first layer of each stage (1, 5, 9, 13, 17, 21)
changes the channel count, with stride 2 at layers 1, 5, 9 and 17; it must be an MBConv. The other 15 layers keep
the shape, add a shortcut, and may be ``zero``: the layer is skipped (its output is its input).

Ops: ``mb_k{3,5,7}_e{3,6}`` (MBConv with kernel k and expansion e) and ``zero``. The text form is the list of the
21 ops: ``ProxylessArch(ops=['mb_k5_e3', 'mb_k3_e3', 'zero', ...])``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DartsNasError
from .text import literal_fields, load_typed, spec_string

MB_OPS: tuple[str, ...] = ("mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6", "mb_k7_e3", "mb_k7_e6")
MOBILE_PRIMITIVES: tuple[str, ...] = ("zero",) + MB_OPS
LAYERS = 21
CHANGE_LAYERS = (1, 5, 9, 13, 17, 21)      # first layer of each stage: new channel count, no shortcut, no `zero`
STRIDE2_LAYERS = (1, 5, 9, 17)
STAGE_CHANNELS = (32, 56, 112, 128, 256, 432)
STEM_CHANNELS, FIRST_CHANNELS, HEAD_CHANNELS = 40, 24, 1728


def mb_params(op: str) -> tuple[int, int]:
    """(kernel, expansion) of an ``mb_k<k>_e<e>`` op."""
    _, k, e = op.split("_")
    return int(k[1:]), int(e[1:])


def layer_plan(width: float = 1.0) -> list[tuple[int, int, int, bool]]:
    """(C_in, C_out, stride, may_skip) of the 21 searchable layers at a width multiplier."""
    plan, c_in, stage = [], make_divisible(FIRST_CHANNELS * width), -1
    for layer in range(1, LAYERS + 1):
        if layer in CHANGE_LAYERS:
            stage += 1
        c_out = make_divisible(STAGE_CHANNELS[stage] * width)
        plan.append((c_in, c_out, 2 if layer in STRIDE2_LAYERS else 1, layer not in CHANGE_LAYERS))
        c_in = c_out
    return plan


def make_divisible(v: float, divisor: int = 8) -> int:
    """MobileNetV2's rounding of a channel count to a multiple of 8, never more than 10% below v."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


@dataclass(frozen=True)
class ProxylessArch:
    """The op of each of the 21 searchable layers (layer 1 first)."""

    space = "proxyless"     # the search space whose architectures this type describes
    network = "proxyless"   # the evaluation network it trains in (whatever the dataset)

    ops: tuple[str, ...]

    @staticmethod
    def load(spec) -> "ProxylessArch":
        return load_proxyless_arch(spec)

    def __post_init__(self):
        if isinstance(self.ops, (str, bytes)) or not isinstance(self.ops, (list, tuple)):
            raise DartsNasError(f"ProxylessArch ops must be a list of {LAYERS} op names")
        ops = tuple(self.ops)
        if len(ops) != LAYERS:
            raise DartsNasError(f"a ProxylessNAS architecture has {LAYERS} searchable layers, got {len(ops)} ops")
        for layer, op in enumerate(ops, 1):
            if op not in MOBILE_PRIMITIVES:
                raise DartsNasError(f"layer {layer}: unknown op {op!r} (known: {', '.join(MOBILE_PRIMITIVES)})")
            if op == "zero" and layer in CHANGE_LAYERS:
                raise DartsNasError(f"layer {layer} changes the channel count (layers {', '.join(map(str, CHANGE_LAYERS))}): "
                                    "it cannot be skipped ('zero')")
        object.__setattr__(self, "ops", ops)

    def graphs(self) -> list:
        """The network as a chain: stem, then each layer that is not skipped, labelled with its op."""
        from .graph import CellGraph

        kept = [(layer, op) for layer, op in enumerate(self.ops, 1) if op != "zero"]
        nodes = tuple(f"layer {layer}" for layer, _ in kept)
        edges, prev = [], "stem"
        for (layer, op), node in zip(kept, nodes):
            edges.append((prev, node, op))
            prev = node
        edges.append((prev, "head", "conv 1x1"))
        return [CellGraph("network", ("stem",), nodes, "head", tuple(edges), "pool + classifier")]

    def to_text(self) -> str:
        return "ProxylessArch(ops=[" + ", ".join(repr(op) for op in self.ops) + "])"

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "ProxylessArch":
        fields = literal_fields(str(text), "ProxylessArch")
        if set(fields) != {"ops"}:
            raise DartsNasError("ProxylessArch(...) takes one field, ops=[...]")
        return cls(fields["ops"])

    def to_dict(self) -> dict:
        return {"space": self.space, "ops": list(self.ops)}

    @classmethod
    def from_dict(cls, d) -> "ProxylessArch":
        if not isinstance(d, dict) or d.get("space") != cls.space or "ops" not in d:
            raise DartsNasError('not a ProxylessNAS architecture record (expected {"space": "proxyless", "ops": [...]})')
        return cls(d["ops"])

    def parameter_free_ops(self) -> int:
        """Skipped layers."""
        return sum(op == "zero" for op in self.ops)


def _merge(skippable: list[str], change: list[str]) -> tuple[str, ...]:
    """The 21 layer ops from the ops of the 15 skippable and of the 6 channel-changing layers."""
    skippable, change = iter(skippable), iter(change)
    return tuple(next(change) if layer in CHANGE_LAYERS else next(skippable) for layer in range(1, LAYERS + 1))


# UNAS' architecture in this space, and ProxylessNAS' GPU architecture it compares with; read from the authors'
# genotypes (NVlabs/unas @cdd19b9, proxylessnas/genotypes.py: 15 skippable-layer ops and 6 channel-changing ones).
UNAS_PROXYLESS = ProxylessArch(_merge(
    ["mb_k3_e3", "zero", "zero", "zero", "zero", "zero", "mb_k3_e3", "mb_k3_e3", "mb_k3_e3", "mb_k3_e3", "mb_k3_e3",
     "mb_k3_e3", "mb_k7_e3", "mb_k7_e3", "mb_k7_e3"],
    ["mb_k5_e3", "mb_k7_e3", "mb_k7_e3", "mb_k5_e3", "mb_k7_e6", "mb_k7_e6"]))
PROXYLESS_GPU = ProxylessArch(_merge(
    ["zero", "zero", "zero", "zero", "zero", "mb_k3_e3", "zero", "zero", "mb_k5_e3", "zero", "mb_k3_e3", "mb_k5_e3",
     "mb_k7_e6", "mb_k7_e6", "mb_k5_e6"],
    ["mb_k5_e3", "mb_k7_e3", "mb_k7_e6", "mb_k5_e6", "mb_k7_e6", "mb_k7_e6"]))
MOBILE_PUBLISHED: dict[str, ProxylessArch] = {"UNAS_PROXYLESS": UNAS_PROXYLESS, "PROXYLESS_GPU": PROXYLESS_GPU}


def load_proxyless_arch(spec) -> ProxylessArch:
    """A published name, a run directory's (or file's) genotype.json, or ``ProxylessArch(ops=[...])`` text."""
    if isinstance(spec, ProxylessArch):
        return spec
    s = spec_string(spec)
    key = s.strip().upper().replace("-", "_")
    if key in MOBILE_PUBLISHED:
        return MOBILE_PUBLISHED[key]
    return load_typed(s, ProxylessArch, f"not a ProxylessNAS architecture name ({', '.join(MOBILE_PUBLISHED)}), "
                      "run directory, file or ProxylessArch(ops=[...]) text")
