"""The reversible Transformer: the residual function (pre-LayerNorm, one op or a weighted mix of the op bank's ops,
dropout), and the encoder-decoder / decoder-only network over multi-split reversible stacks
(:mod:`darts_nas.nets.reversible`). The search space and the network trained from scratch are the same class:
the search gives every function the whole bank and passes op weights; a derived architecture gives each
function its one op.

Shapes: tokens ``[B, T]``; the hidden state's parts ``[B, T, d]``. Token id 0 is padding. Side inputs of every
function: ``(memory [B, S, d] or None, self-attention mask [B or 1, 1, T, T] (True: may attend) or None,
encoder-attention mask [B, 1, 1, S] or None, keep [B, T, 1] (1 on tokens, 0 on padding) or None)``.

The op bank of the functions (its names as in :mod:`darts_nas.genotypes.transformer`) is
:mod:`darts_nas.ops.transformer`; ``zero`` has no module and is skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..genotypes.transformer import OP_BANKS
from ..ops import transformer_op
from ..settings import SettingsGroup, setting
from .reversible import ReversibleBlock, ReversibleStack

PAD = 0


@dataclass
class TransformerSettings(SettingsGroup):
    """The reversible Transformer's size, shared by the search space and the network trained from scratch."""

    POSITIVE = ("d_model", "splits", "blocks")

    d_model: int = setting(64, "reversible Transformer: width of each part of the hidden state", space_setting=True)
    splits: int = setting(2, "reversible Transformer: parts of the hidden state, each updated by its own residual "
                        "function (2: RevNet's coupling)", space_setting=True)
    blocks: int = setting(2, "reversible Transformer: reversible blocks in the encoder and in the decoder",
                        space_setting=True)
    op_bank: str = setting("evolved", "reversible Transformer search: the candidate ops (evolved: the Evolved "
                         "Transformer's kinds in several widths and head counts; small: one of each kind)",
                         tuple(OP_BANKS), space_setting=True)
    reversible: bool = setting(True, "reversible Transformer: backpropagate by reconstructing each block's inputs "
                             "(activation memory constant in depth); off: plain autograd", space_setting=True)
    model_dropout: float = setting(0.1, "reversible Transformer: dropout on the embeddings and each function's output",
                                 space_setting=True)


class TransformerFunction(nn.Module):
    """One residual function F_i: LayerNorm, then its op (a derived architecture) or the op weights' mix of the
    bank (the search; ``zero`` contributes nothing and is skipped), then dropout."""

    def __init__(self, ops: tuple[str, ...], d: int, causal: bool, dropout: float):
        super().__init__()
        self.names = tuple(ops)
        self.norm = nn.LayerNorm(d)
        self.ops = nn.ModuleList([transformer_op(n, d, causal) or nn.Identity() for n in self.names])
        self.active = [k for k, n in enumerate(self.names) if n != "zero"]
        self.drop = nn.Dropout(dropout)

    def forward(self, h, side, w=None):
        x = self.norm(h)
        if w is None:
            if len(self.names) != 1:
                raise ValueError("a function over several ops needs its op weights")
            return self.drop(self.ops[0](x, side))
        out = None
        for k in self.active:
            y = w[k] * self.ops[k](x, side)
            out = y if out is None else out + y
        if out is None:
            return torch.zeros_like(h)
        return self.drop(out)


def sinusoid(T: int, d: int, device, dtype, offset: int = 0) -> torch.Tensor:
    """Vaswani et al.'s sinusoidal position encoding, [T, d]."""
    pos = torch.arange(offset, offset + T, device=device, dtype=torch.float32).unsqueeze(1)
    i = torch.arange(0, d, 2, device=device, dtype=torch.float32)
    angle = pos / torch.pow(10000.0, i / d)
    pe = torch.zeros(T, d, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d // 2])
    return pe.to(dtype)


def make_stack(blocks: list[list[tuple[str, ...]]], d: int, causal: bool, dropout: float,
               reversible: bool) -> ReversibleStack:
    return ReversibleStack([ReversibleBlock([TransformerFunction(ops, d, causal, dropout) for ops in block])
                            for block in blocks], reversible)


class ReversibleTransformer(nn.Module):
    """Encoder-decoder (``encoder`` blocks given) or decoder-only language model over reversible stacks.

    ``encoder`` / ``decoder``: per block, per split, the tuple of ops of that function (the whole bank in the
    search, one op in a derived model). The embedding (scaled by sqrt(d), plus sinusoidal positions) feeds every
    part; the stack's output is the mean of its parts, LayerNorm-ed, scored against the tied embedding. Source and
    target share one vocabulary (a joint subword model), so one embedding serves both sides."""

    def __init__(self, vocab_size: int, d_model: int, encoder, decoder, dropout: float = 0.1,
                 reversible: bool = True):
        super().__init__()
        self.d_model, self.vocab_size = d_model, vocab_size
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=d_model ** -0.5)
        self.drop = nn.Dropout(dropout)
        self.encoder = make_stack(encoder, d_model, False, dropout, reversible) if encoder else None
        self.decoder = make_stack(decoder, d_model, True, dropout, reversible)
        self.enc_norm = nn.LayerNorm(d_model) if encoder else None
        self.dec_norm = nn.LayerNorm(d_model)
        self.splits = self.decoder.splits

    def set_reversible(self, enabled: bool) -> None:
        for stack in (self.encoder, self.decoder):
            if stack is not None:
                stack.reversible = enabled

    def _embed(self, tokens, offset: int = 0):
        x = self.embed(tokens) * math.sqrt(self.d_model)
        x = x + sinusoid(tokens.shape[1], self.d_model, x.device, x.dtype, offset)
        return self.drop(x)

    def _run(self, stack, x, side, weights):
        parts = stack([x] * stack.splits, side, weights)
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out / len(parts)

    def encode(self, src, weights=None):
        """(memory [B, S, d], encoder-attention mask [B, 1, 1, S]) of source tokens."""
        pad = src == PAD
        mask = (~pad)[:, None, None, :]
        side = (None, mask, None, (~pad).unsqueeze(-1).to(self.embed.weight.dtype))
        memory = self.enc_norm(self._run(self.encoder, self._embed(src), side, weights))
        return memory, mask

    def decode(self, tgt, memory=None, memory_mask=None, weights=None, pad_aware: bool = True):
        """Logits [B, T, V] of the next token at each target position (causal)."""
        T = tgt.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=tgt.device).tril()[None, None]
        keep = None
        if pad_aware:
            keep = (tgt != PAD).unsqueeze(-1).to(self.embed.weight.dtype)
        side = (memory, causal, memory_mask, keep)
        h = self.dec_norm(self._run(self.decoder, self._embed(tgt), side, weights))
        return h @ self.embed.weight.t()

    def forward(self, src, tgt, enc_weights=None, dec_weights=None):
        if self.encoder is None:  # a language model: `src` is the token sequence, `tgt` unused
            return self.decode(src, weights=dec_weights, pad_aware=False)
        memory, mask = self.encode(src, enc_weights)
        return self.decode(tgt, memory, mask, dec_weights)


def seq2seq_loss(logits, target, label_smoothing: float = 0.0):
    """Mean cross-entropy per target token, padding excluded."""
    logits = logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD,
                           label_smoothing=label_smoothing)


def fixed_blocks(arch_blocks) -> list[list[tuple[str, ...]]]:
    """A derived architecture's blocks as the network's per-function op tuples."""
    return [[(op,) for op in block] for block in arch_blocks]


def transformer_from_arch(arch, vocab_size: int, d_model: int, dropout: float = 0.1,
                          reversible: bool = True) -> ReversibleTransformer:
    return ReversibleTransformer(vocab_size, d_model, fixed_blocks(arch.encoder), fixed_blocks(arch.decoder),
                                 dropout, reversible)


@torch.no_grad()
def greedy_decode(model: ReversibleTransformer, src, bos: int, eos: int, max_len: int) -> torch.Tensor:
    """Greedy decoding: [B, <= max_len] token ids after BOS, padded with PAD after each sequence's EOS (PAD and
    BOS are never chosen)."""
    memory, mask = model.encode(src)
    B = src.shape[0]
    out = torch.full((B, 1), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits = model.decode(out, memory, mask)[:, -1]
        logits[:, PAD] = float("-inf")  # never padding or a second BOS
        logits[:, bos] = float("-inf")
        nxt = logits.argmax(-1).masked_fill(done, PAD)
        out = torch.cat([out, nxt[:, None]], 1)
        done |= nxt == eos
        if bool(done.all()):
            break
    return out[:, 1:]


@torch.no_grad()
def beam_decode(model: ReversibleTransformer, src, bos: int, eos: int, max_len: int, beam: int = 4,
                length_penalty: float = 0.6) -> torch.Tensor:
    """Beam search (GNMT length penalty ((5 + len) / 6) ** alpha), each source's best hypothesis; the same
    output format as :func:`greedy_decode`."""
    memory, mask = model.encode(src)
    B, V = src.shape[0], model.vocab_size
    dev = src.device
    memory = memory.repeat_interleave(beam, 0)
    mask = mask.repeat_interleave(beam, 0)
    seqs = torch.full((B * beam, 1), bos, dtype=torch.long, device=dev)
    scores = torch.zeros(B, beam, device=dev)
    scores[:, 1:] = float("-inf")  # all beams start as one hypothesis
    finished = torch.zeros(B * beam, dtype=torch.bool, device=dev)
    for step in range(max_len):
        logp = torch.log_softmax(model.decode(seqs, memory, mask)[:, -1].float(), -1)  # [B*beam, V]
        logp[:, bos] = float("-inf")
        # A finished hypothesis only extends with PAD at no cost.
        logp = torch.where(finished[:, None], torch.full_like(logp, float("-inf")), logp)
        logp[:, PAD] = torch.where(finished, torch.zeros_like(logp[:, PAD]), torch.full_like(logp[:, PAD],
                                                                                           float("-inf")))
        total = (scores.view(-1, 1) + logp).view(B, beam * V)
        scores, idx = total.topk(beam, -1)
        origin = (idx // V) + torch.arange(B, device=dev)[:, None] * beam
        token = (idx % V).view(-1)
        seqs = torch.cat([seqs[origin.view(-1)], token[:, None]], 1)
        finished = finished[origin.view(-1)] | (token == eos)
        if bool(finished.all()):
            break
    lengths = ((seqs[:, 1:] != PAD) & (seqs[:, 1:] != eos)).sum(-1).float() + 1
    penalized = scores.view(-1) / ((5 + lengths) / 6) ** length_penalty
    best = penalized.view(B, beam).argmax(-1) + torch.arange(B, device=dev) * beam
    return seqs[best, 1:]
