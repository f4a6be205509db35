"""DARTS over a reversible Transformer (Zhao et al., "Memory-Efficient Differentiable Transformer Architecture
Search", arXiv:2105.14669): every residual function of every multi-split reversible block is a mixed op over a
Transformer op bank (:mod:`darts_nas.genotypes.transformer`), with one alpha row per function.

Two spaces share the supernet:

- ``rev-transformer``: encoder-decoder translation (data kind "seq2seq": batches (src, tgt_in, tgt_out)); alpha
  matrices ``encoder`` [blocks * splits, |encoder ops|] and ``decoder`` [blocks * splits, |decoder ops|] (the
  decoder's bank adds attention to the encoder);
- ``rev-transformer-lm``: a decoder-only language model on a word corpus (data kind "text", the recurrent space's
  run: BPTT windows of PTB / WikiText-2); alpha matrix ``decoder``. Each window is one context (the "hidden state"
  the text run carries is empty).

The backward pass reconstructs each block's inputs (:mod:`darts_nas.nets.reversible`): the alphas' and weights'
gradients are those of plain autograd (tested in float64), with activation memory that does not grow with depth.
Strategies: first-order and second-order bilevel and iDARTS with the finite-difference Hessian-vector product,
and single-level, work through it (they need first-order gradients only); the exact Hessian-vector product needs
double backward, which the reconstructing backward does not offer (``--no-reversible`` runs it through plain
autograd).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.func import functional_call

from ..genotypes import TransformerArch, derive_transformer, op_bank
from ..genotypes.transformer import TRANSFORMER_PARAMETER_FREE
from ..nets.transformer import ReversibleTransformer, TransformerSettings, seq2seq_loss
from ..nets.rnn import LanguageModelSettings, lm_cross_entropy
from ..precision import autocast
from .base import SearchData, SearchModel, parameter_count_millions

SETTINGS = frozenset({"blocks", "d_model", "splits", "op_bank", "reversible", "model_dropout"})


class RevTransformerSearchModel(SearchModel):
    space = "rev-transformer"
    data_kind = "seq2seq"
    genotype_type = TransformerArch
    settings = SETTINGS
    settings_groups = (TransformerSettings,)
    language_model = False

    @classmethod
    def config_problems(cls, config) -> list[str]:
        problems = []
        if config.reversible:
            if config.precision != "fp32":
                problems.append("the reversible stack reconstructs its inputs in fp32 (in bf16 the rounding of each "
                                "block's inverse accumulates): use --precision fp32 or --no-reversible")
        if config.splits < 2:
            problems.append("--splits must be at least 2 (2 is RevNet's coupling)")
        if config.d_model % 8 or config.d_model < 8:
            problems.append("--d-model must be a positive multiple of 8 (the attention ops use up to 8 heads)")
        if not 0 <= config.model_dropout < 1:
            problems.append("--model-dropout must be in [0, 1)")
        if config.cuda_graphs:
            problems.append("the Transformer space's batches vary in length: no --cuda-graphs")
        return problems

    @classmethod
    def double_backward_problems(cls, config) -> list[str]:
        if config.reversible:
            return ["the reversible stack's backward reconstructs its inputs and is not twice differentiable: use "
                    "--hvp finite-difference (the exact product needs --no-reversible)"]
        return []

    @classmethod
    def from_config(cls, config, data: SearchData) -> "RevTransformerSearchModel":
        return cls(data.vocab_size, d_model=config.d_model, layers=config.blocks, splits=config.splits,
                   bank=config.op_bank, dropout=config.model_dropout, reversible=config.reversible,
                   relaxation=config.relaxation, max_w=config.max_w)

    def apply_execution_settings(self, config) -> "RevTransformerSearchModel":
        return self.use_precision(config.precision)

    def __init__(self, vocab_size: int, d_model: int = 64, layers: int = 2, splits: int = 2, bank: str = "evolved",
                 dropout: float = 0.1, reversible: bool = True, relaxation: str = "softmax", max_w: bool = False):
        super().__init__()
        self.hparams = dict(vocab_size=vocab_size, d_model=d_model, layers=layers, splits=splits, bank=bank,
                            dropout=dropout, reversible=reversible, relaxation=relaxation, max_w=max_w)
        enc_ops, dec_ops = op_bank(bank, lm=self.language_model)
        self.enc_ops, self.dec_ops = enc_ops, dec_ops
        self.layers, self.splits = layers, splits
        encoder = None if self.language_model else [[enc_ops] * splits for _ in range(layers)]
        decoder = [[dec_ops] * splits for _ in range(layers)]
        self.net = ReversibleTransformer(vocab_size, d_model, encoder, decoder, dropout, reversible)
        self.primitives = dec_ops
        alphas = {"decoder": nn.Parameter(1e-3 * torch.randn(layers * splits, len(dec_ops)))}
        if not self.language_model:
            alphas = {"encoder": nn.Parameter(1e-3 * torch.randn(layers * splits, len(enc_ops))), **alphas}
        self.alphas = nn.ParameterDict(alphas)
        self.init_search(relaxation, max_w)

    @contextlib.contextmanager
    def twice_differentiable(self):
        """Plain autograd and the math attention kernel inside (the reconstructing backward and the fused
        attention kernels are not twice differentiable)."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        saved = [s.reversible for s in (self.net.encoder, self.net.decoder) if s is not None]
        self.net.set_reversible(False)
        try:
            with sdpa_kernel(SDPBackend.MATH):
                yield
        finally:
            for s, r in zip([s for s in (self.net.encoder, self.net.decoder) if s is not None], saved):
                s.reversible = r

    def use_channels_last(self, enabled: bool = True):
        return self  # no image layout here

    def columns(self) -> dict[str, list[str]]:
        return {k: list(self.enc_ops if k == "encoder" else self.dec_ops) for k in self.alphas}

    def edge_names(self) -> dict[str, list[str]]:
        return {k: [f"block {b} F{i + 1}" for b in range(self.layers) for i in range(self.splits)]
                for k in self.alphas}

    def alpha_table(self) -> str:
        lines, columns, names = [], self.columns(), self.edge_names()
        for k, w in self.derivation_weights().items():
            lines.append(f"{k}:")
            for row_name, row in zip(names[k], w.tolist()):
                top = sorted(zip(columns[k], row), key=lambda t: -t[1])[:4]
                lines.append(f"  {row_name}: " + "  ".join(f"{op} {v:.3f}" for op, v in top))
        return "\n".join(lines)

    def _stack_weights(self, weights: dict[str, torch.Tensor]):
        shape = lambda w: w.view(self.layers, self.splits, -1)  # noqa: E731
        return (shape(weights["encoder"]) if "encoder" in weights else None), shape(weights["decoder"])

    def forward(self, src, tgt=None):
        enc_w, dec_w = self._stack_weights(self.op_weights())
        return self.net(src, tgt, enc_w, dec_w)

    def loss(self, batch, weights: dict[str, torch.Tensor] | None = None):
        """Mean cross-entropy per target token (padding excluded), and the logits."""
        src, tgt_in, tgt_out = batch
        with autocast(src.device, self.precision):
            logits = self(src, tgt_in) if weights is None else \
                functional_call(self, weights, (src, tgt_in), strict=False)
        return seq2seq_loss(logits, tgt_out), logits

    per_example_losses = False  # the loss averages tokens, not examples

    def op_costs(self) -> dict[str, torch.Tensor]:
        """Parameters (millions) of each candidate op of each function."""
        out = {}
        for key, stack in (("encoder", self.net.encoder), ("decoder", self.net.decoder)):
            if key not in self.alphas:
                continue
            rows = []
            for block in stack.blocks:
                for f in block.functions:
                    rows.append([0.0 if n == "zero" else parameter_count_millions(op)
                                 for n, op in zip(f.names, f.ops)])
            out[key] = torch.tensor(rows, device=self.alphas[key].device)
        return out

    @torch.no_grad()
    def derived_weights(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One-hot at each function's derived op: the strongest one other than zero."""
        weights = self.derivation_weights() if weights is None else weights
        out = {}
        for name, w in weights.items():
            ops = self.enc_ops if name == "encoder" else self.dec_ops
            masked = w.masked_fill(torch.tensor([o == "zero" for o in ops], device=w.device), float("-inf"))
            out[name] = torch.nn.functional.one_hot(masked.argmax(-1), w.shape[-1]).to(w.dtype)
        return out

    def genotype(self) -> TransformerArch:
        w = self.derivation_weights()
        return derive_transformer(w.get("encoder"), w["decoder"], self.splits, self.enc_ops, self.dec_ops)

    @staticmethod
    def parameter_free_ops(genotype) -> int | None:
        return sum(op in TRANSFORMER_PARAMETER_FREE for blocks in (genotype.encoder, genotype.decoder)
                   for b in blocks for op in b)


class RevTransformerLMSearchModel(RevTransformerSearchModel):
    """The decoder-only reversible Transformer as a language model on a word corpus (BPTT windows)."""

    space = "rev-transformer-lm"
    data_kind = "text"
    settings = SETTINGS | {"bptt", "max_seq_len_delta"}
    settings_groups = (LanguageModelSettings,)
    language_model = True

    def init_hidden(self, batch_size: int, device=None) -> torch.Tensor:
        """Nothing is carried between windows: an empty tensor stands for the text run's hidden state."""
        return torch.zeros(0, device=device if device is not None else self.alphas["decoder"].device)

    def forward(self, tokens, tgt=None):
        _, dec_w = self._stack_weights(self.op_weights())
        return self.net(tokens, None, None, dec_w)

    def loss(self, batch, weights: dict[str, torch.Tensor] | None = None):
        """Mean cross-entropy per token of a window ``(tokens [T, B], targets [T, B], hidden)``; the empty hidden
        state passes through."""
        x, y, hidden = batch
        tokens = x.t()
        with autocast(x.device, self.precision):
            logits = self(tokens) if weights is None else functional_call(self, weights, (tokens,), strict=False)
        return lm_cross_entropy(logits.transpose(0, 1), y), hidden
