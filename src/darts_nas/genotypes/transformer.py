"""The architecture the reversible Transformer search derives (Zhao et al., arXiv:2105.14669): for each
reversible block of the encoder and the decoder, the op of each of its n residual functions.

``TransformerArch(splits=2, encoder=[['attn_4', 'ffn'], ...], decoder=[['attn_4', 'enc_attn_4'], ...])``; a
decoder-only language model has ``encoder=[]``. The op bank follows the Evolved Transformer's (So et al.,
arXiv:1901.11117): self-attention with several head counts, attention to the encoder (decoder only), separable,
lightweight (Wu et al., arXiv:1901.10430) and depthwise convolutions of several widths, GLU, a feed-forward
layer, identity and zero. In the decoder every convolution is causal.

Derivation: per function the strongest op other than ``zero`` (a zero function leaves its part unchanged, so it
would only shorten the network; DARTS drops ``none`` the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DartsNasError
from .text import literal_fields, load_typed

# The op bank. The decoder's adds attention to the encoder's output; a language model's decoder has no encoder.
ENCODER_OPS: tuple[str, ...] = ("zero", "identity", "attn_2", "attn_4", "attn_8", "sep_conv_3", "sep_conv_5",
                                "sep_conv_7", "light_conv_3", "light_conv_7", "dw_conv_3", "dw_conv_7", "glu",
                                "ffn")
DECODER_OPS: tuple[str, ...] = ENCODER_OPS + ("enc_attn_4", "enc_attn_8")
# A smaller bank for quick runs and tests (one of each kind).
SMALL_ENCODER_OPS: tuple[str, ...] = ("zero", "identity", "attn_4", "sep_conv_3", "light_conv_3", "dw_conv_3",
                                      "glu", "ffn")
SMALL_DECODER_OPS: tuple[str, ...] = SMALL_ENCODER_OPS + ("enc_attn_4",)
OP_BANKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "evolved": (ENCODER_OPS, DECODER_OPS),
    "small": (SMALL_ENCODER_OPS, SMALL_DECODER_OPS),
}
TRANSFORMER_PARAMETER_FREE = frozenset({"identity", "zero"})


def op_bank(name: str, lm: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(encoder ops, decoder ops) of a bank; a language model's decoder cannot attend to an encoder."""
    if name not in OP_BANKS:
        raise DartsNasError(f"unknown op bank {name!r} (known: {', '.join(OP_BANKS)})")
    enc, dec = OP_BANKS[name]
    if lm:
        dec = tuple(o for o in dec if not o.startswith("enc_attn"))
    return enc, dec


def _blocks(value, what: str, splits: int, allowed: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise DartsNasError(f"TransformerArch {what}: expected a list of blocks, each a list of {splits} op names")
    out = []
    for b, block in enumerate(value):
        if isinstance(block, (str, bytes)) or not isinstance(block, (list, tuple)) or len(block) != splits:
            raise DartsNasError(f"TransformerArch {what}[{b}]: expected {splits} op names (one per split), got "
                                f"{block!r}")
        for op in block:
            if op not in allowed or op == "zero":
                raise DartsNasError(f"TransformerArch {what}[{b}]: {op!r} is not one of the {what}'s ops "
                                    f"({', '.join(o for o in allowed if o != 'zero')})")
        out.append(tuple(str(op) for op in block))
    return tuple(out)


@dataclass(frozen=True)
class TransformerArch:
    """A discrete reversible Transformer: the op of every residual function, per block, per split."""

    space = "rev-transformer"
    network = "transformer"
    trained_by = "darts-nas train --genotype ... --dataset copy|reverse|sort|parallel (or ptb / wikitext-2)"

    splits: int
    encoder: tuple[tuple[str, ...], ...]
    decoder: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        if not isinstance(self.splits, int) or isinstance(self.splits, bool) or self.splits < 2:
            raise DartsNasError(f"TransformerArch splits must be an integer of at least 2, got {self.splits!r}")
        object.__setattr__(self, "encoder", _blocks(self.encoder, "encoder", self.splits, ENCODER_OPS))
        allowed = ENCODER_OPS + ("enc_attn_4", "enc_attn_8") if self.encoder else ENCODER_OPS
        object.__setattr__(self, "decoder", _blocks(self.decoder, "decoder", self.splits, allowed))
        if not self.decoder:
            raise DartsNasError("TransformerArch needs at least one decoder block")

    @property
    def language_model(self) -> bool:
        """Decoder-only (no encoder blocks)."""
        return not self.encoder

    @staticmethod
    def load(spec) -> "TransformerArch":
        return load_transformer_arch(spec)

    def graphs(self) -> list:
        from .graph import CellGraph

        out = []
        for part, blocks in (("encoder", self.encoder), ("decoder", self.decoder)):
            for b, ops in enumerate(blocks):
                inputs = tuple(f"x{i + 1}" for i in range(self.splits))
                names = tuple(f"y{i + 1}" for i in range(self.splits))
                edges = []
                for i, op in enumerate(ops):
                    # F_i reads the other parts: outputs before it, inputs after it.
                    for j in range(self.splits):
                        if j != i:
                            edges.append((names[j] if j < i else inputs[j], names[i], op))
                    edges.append((inputs[i], names[i], "+"))
                edges += [(n, "output", "") for n in names]
                out.append(CellGraph(f"{part} block {b}", inputs, names, "output", tuple(edges), "parts"))
        return out

    def to_text(self) -> str:
        def blocks(bs):
            return "[" + ", ".join("[" + ", ".join(repr(op) for op in b) + "]" for b in bs) + "]"
        return f"TransformerArch(splits={self.splits}, encoder={blocks(self.encoder)}, decoder={blocks(self.decoder)})"

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "TransformerArch":
        fields = literal_fields(str(text), "TransformerArch")
        if set(fields) != {"splits", "encoder", "decoder"}:
            raise DartsNasError("TransformerArch(...) takes three fields: splits=..., encoder=[...], decoder=[...]")
        return cls(fields["splits"], fields["encoder"], fields["decoder"])

    def to_dict(self) -> dict:
        return {"space": self.space, "splits": self.splits, "encoder": [list(b) for b in self.encoder],
                "decoder": [list(b) for b in self.decoder]}

    @classmethod
    def from_dict(cls, d) -> "TransformerArch":
        if not isinstance(d, dict) or d.get("space") != cls.space or not {"splits", "encoder", "decoder"} <= set(d):
            raise DartsNasError('not a reversible Transformer record (expected {"space": "rev-transformer", '
                                '"splits": n, "encoder": [...], "decoder": [...]})')
        return cls(d["splits"], d["encoder"], d["decoder"])

    def parameter_free_ops(self) -> int:
        return sum(op in TRANSFORMER_PARAMETER_FREE for blocks in (self.encoder, self.decoder)
                   for b in blocks for op in b)


def derive_transformer(encoder_weights, decoder_weights, splits: int, encoder_ops, decoder_ops) -> TransformerArch:
    """Per function (rows: block-major, split-minor) the strongest op other than zero (ties to the earlier op)."""
    def pick(weights, ops):
        rows = [list(map(float, r)) for r in weights] if weights is not None else []
        if len(rows) % splits:
            raise DartsNasError(f"derive_transformer: {len(rows)} rows do not make blocks of {splits}")
        cols = [k for k, o in enumerate(ops) if o != "zero"]
        chosen = [ops[max(cols, key=lambda k: (r[k], -k))] for r in rows]
        return [chosen[b:b + splits] for b in range(0, len(chosen), splits)]
    return TransformerArch(splits, pick(encoder_weights, encoder_ops), pick(decoder_weights, decoder_ops))


def load_transformer_arch(spec) -> TransformerArch:
    """A search run directory's (or file's) genotype.json, or ``TransformerArch(...)`` text."""
    if isinstance(spec, TransformerArch):
        return spec
    return load_typed(spec, TransformerArch, "not a reversible Transformer search run directory, genotype file or "
                      "TransformerArch(...) text")
