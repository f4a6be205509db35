"""Recurrent cells and the language model around them (DARTS, Liu, Simonyan and Yang, arXiv:1806.09055, sections 2.1 and 3.2).

One time step of a cell, for hidden size H:

    node 0:    [c0, h0] = [x_t * m_x, h_{t-1} * m_h] W0,        s0 = h_{t-1} + sigmoid(c0) (tanh(h0) - h_{t-1})
    node i:    [c, h]   = (s_j * m_h) W_i,                       s_i = s_j + sigmoid(c) (f(h) - s_j)
    output:    h_t = mean of the states in ``concat``

(a highway bypass around every activation f). m_x, m_h are variational dropout masks drawn once per sequence.
The evaluation cell (:class:`RecurrentCell`) has one predecessor j and one f per node, from a genotype. The search
cell (:class:`darts_nas.spaces.rnn_cell.SearchRecurrentCell`, built on the same :class:`_Cell`) feeds node i from every earlier state, each through its one matrix W_i shared by
the candidate ops of that edge, mixes ``sum_j sum_f w_{j,f} (s_j + sigmoid(c_j)(f(h_j) - s_j))`` with the op
weights of the relaxation (``none`` adds nothing), and batch-normalizes (no affine, batch statistics) s0 and each
node; its output is the mean of all intermediate nodes.

:class:`RNNLanguageModel` wraps a cell: an embedding with word-level (embedding) dropout and locked dropout on its
output, the cell, locked dropout on the cell output, and a decoder whose weight is the embedding's (tied).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..genotypes import RecurrentGenotype
from ..settings import SettingsGroup, setting

INIT_RANGE = 0.04  # uniform init of the cell matrices (the published code's value)
EMBED_INIT_RANGE = 0.1


@dataclass
class LanguageModelSettings(SettingsGroup):
    """The language model's fields, shared by the recurrent search and training (the defaults are the search's;
    TrainConfig overrides the ones its recipe changes)."""

    POSITIVE = ("units", "bptt")

    units: int = setting(300, "language model: embedding and hidden size (DARTS: 300 in search, 850 on PTB, 700 on "
                       "WikiText-2)", space_setting=True)
    bptt: int = setting(35, "language model: base BPTT length (each training window's length is drawn around it)", space_setting=True)
    max_seq_len_delta: int = setting(20, "language model: training windows are at most --bptt + this long", space_setting=True)
    dropout: float = setting(0.75, "language model: locked dropout on the cell output", space_setting=True)
    dropout_h: float = setting(0.25, "language model: variational dropout on the hidden states the nodes read", space_setting=True)
    dropout_x: float = setting(0.75, "language model: variational dropout on the cell input x", space_setting=True)
    dropout_i: float = setting(0.2, "language model: locked dropout on the embeddings", space_setting=True)
    dropout_e: float = setting(0.0, "language model: embedding (whole-word) dropout", space_setting=True)
    ar: float = setting(0.0, "language model: activation regularization weight (AR)", space_setting=True)
    tar: float = setting(1e-3, "language model: temporal activation regularization weight (TAR)", space_setting=True)


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda h: h}


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout of a ``[T, B, D]`` sequence: one mask per (sequence, unit), the same at every step."""
    if not training or not p:
        return x
    mask = torch.empty(1, x.shape[1], x.shape[2], device=x.device, dtype=x.dtype).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedded_dropout(weight: torch.Tensor, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Embedding lookup with whole words dropped (rows of the embedding zeroed, the rest scaled by 1/(1-p))."""
    if training and p:
        mask = torch.empty(weight.shape[0], 1, device=weight.device, dtype=weight.dtype).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(tokens, weight)


def _mask(batch: int, size: int, p: float, like: torch.Tensor) -> torch.Tensor | None:
    if not p:
        return None
    return torch.empty(batch, size, device=like.device, dtype=like.dtype).bernoulli_(1 - p) / (1 - p)


def _uniform(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape).uniform_(-INIT_RANGE, INIT_RANGE))


class _Cell(nn.Module):
    """What both cells share: W0 and one W_i per node, the masks, node 0, and the loop over time."""

    def __init__(self, ninp: int, nhid: int, steps: int, dropout_x: float, dropout_h: float):
        super().__init__()
        self.ninp, self.nhid, self.steps = ninp, nhid, steps
        self.dropout_x, self.dropout_h = dropout_x, dropout_h
        self.W0 = _uniform(ninp + nhid, 2 * nhid)
        self.Ws = nn.ParameterList([_uniform(nhid, 2 * nhid) for _ in range(steps)])

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor | None = None):
        """inputs ``[T, B, ninp]``, hidden ``[B, nhid]`` -> (outputs ``[T, B, nhid]``, last hidden ``[B, nhid]``)."""
        T, B = inputs.shape[0], inputs.shape[1]
        train = self.training
        x_mask = _mask(B, self.ninp, self.dropout_x, inputs) if train else None
        h_mask = _mask(B, self.nhid, self.dropout_h, inputs) if train else None
        x = inputs if x_mask is None else inputs * x_mask
        # The input half of node 0 for all steps in one matmul: [x, h] W0 = x W0[:ninp] + h W0[ninp:].
        x_part = (x.reshape(T * B, self.ninp) @ self.W0[: self.ninp]).view(T, B, 2 * self.nhid)
        w_h = self.W0[self.ninp:]
        weights = self.prepare(weights)  # once per sequence, not per step
        outputs, h = [], hidden
        for t in range(T):
            h_in = h if h_mask is None else h * h_mask
            c0, h0 = (x_part[t] + h_in @ w_h).split(self.nhid, -1)
            s0 = h + torch.sigmoid(c0) * (torch.tanh(h0) - h)
            h = self.nodes(s0, h_mask, weights)
            outputs.append(h)
        return torch.stack(outputs), h

    def prepare(self, weights):
        """What the op weights become for :meth:`nodes`, computed once per sequence."""
        return weights

    def nodes(self, s0, h_mask, weights):  # pragma: no cover - abstract
        raise NotImplementedError


class RecurrentCell(_Cell):
    """The evaluation cell of a :class:`RecurrentGenotype`."""

    def __init__(self, genotype: RecurrentGenotype, ninp: int, nhid: int, dropout_x: float = 0.75,
                 dropout_h: float = 0.25):
        super().__init__(ninp, nhid, genotype.steps, dropout_x, dropout_h)
        self.genotype = genotype
        self._acts = [ACTIVATIONS[op] for op, _ in genotype.recurrent]

    def nodes(self, s0, h_mask, weights=None):
        states = [s0]
        for i, (_, j) in enumerate(self.genotype.recurrent):
            s_prev = states[j]
            c, h = ((s_prev if h_mask is None else s_prev * h_mask) @ self.Ws[i]).split(self.nhid, -1)
            states.append(s_prev + torch.sigmoid(c) * (self._acts[i](h) - s_prev))
        return torch.stack([states[k] for k in self.genotype.concat]).mean(0)


class RNNLanguageModel(nn.Module):
    """Embedding -> (locked dropout) -> recurrent cell -> (locked dropout) -> decoder tied to the embedding.

    ``forward(tokens [T, B], hidden [B, H], weights=None)`` returns (logits ``[T, B, V]``, last hidden, the cell's
    outputs, the same after dropout); the last two feed the activation regularizers (AR, TAR)."""

    def __init__(self, vocab_size: int, units: int, cell: _Cell, dropout: float = 0.75, dropout_i: float = 0.2,
                 dropout_e: float = 0.0):
        super().__init__()
        self.units, self.vocab_size = units, vocab_size
        self.dropout, self.dropout_i, self.dropout_e = dropout, dropout_i, dropout_e
        self.encoder = nn.Embedding(vocab_size, units)
        self.cell = cell
        self.decoder = nn.Linear(units, vocab_size)
        nn.init.uniform_(self.encoder.weight, -EMBED_INIT_RANGE, EMBED_INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)
        self.decoder.weight = self.encoder.weight  # tied

    def init_hidden(self, batch_size: int, device=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.units, device=device if device is not None else self.encoder.weight.device)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor | None = None):
        emb = embedded_dropout(self.encoder.weight, tokens, self.dropout_e, self.training)
        emb = locked_dropout(emb, self.dropout_i, self.training)
        raw, last = self.cell(emb, hidden, weights)
        dropped = locked_dropout(raw, self.dropout, self.training)
        return self.decoder(dropped), last, raw, dropped


def lm_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per token of ``[T, B, V]`` logits (in fp32) against ``[T, B]`` next words."""
    logits = logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def activation_penalty(raw: torch.Tensor, dropped: torch.Tensor, ar: float, tar: float) -> torch.Tensor | float:
    """AR (ar * mean square of the dropped-out outputs) plus TAR (tar * mean square of the step-to-step change of
    the raw outputs), as the AWD-LSTM and DARTS language models add to the training loss."""
    out = 0.0
    if ar:
        out = out + ar * dropped.pow(2).mean()
    if tar and raw.shape[0] > 1:
        out = out + tar * (raw[1:] - raw[:-1]).pow(2).mean()
    return out


class RNNModel(RNNLanguageModel):
    """The evaluation language model of a recurrent genotype (DARTS: units 850 on PTB, 700 on WikiText-2)."""

    def __init__(self, genotype: RecurrentGenotype, vocab_size: int, units: int = 850, dropout: float = 0.75,
                 dropout_h: float = 0.25, dropout_x: float = 0.75, dropout_i: float = 0.2, dropout_e: float = 0.1):
        super().__init__(vocab_size, units, RecurrentCell(genotype, units, units, dropout_x, dropout_h),
                         dropout, dropout_i, dropout_e)
        self.hparams = {"kind": "rnn", "genotype": genotype.to_dict(), "vocab_size": vocab_size, "units": units,
                        "dropout": dropout, "dropout_h": dropout_h, "dropout_x": dropout_x, "dropout_i": dropout_i,
                        "dropout_e": dropout_e}

    @classmethod
    def from_hparams(cls, hparams: dict) -> "RNNModel":
        h = {k: v for k, v in hparams.items() if k != "kind"}
        h["genotype"] = RecurrentGenotype.from_dict(h["genotype"])
        return cls(**h)


def parameter_count(model: nn.Module) -> int:
    """Parameters counted once each (the tied decoder weight is the embedding)."""
    return sum(p.numel() for p in model.parameters())
