"""The DARTS recurrent space (Penn Treebank): a language model around the search cell of
:mod:`darts_nas.nets.rnn`, with one alpha matrix ``recurrent`` ``[36, 5]`` (8 nodes; node i's rows are its inputs
0..i-1; columns none/tanh/relu/sigmoid/identity), init 1e-3 N(0, 1).

A batch is ``(tokens, targets, hidden)``: the hidden state the window starts from travels with it, and
``loss(batch)`` returns (mean cross-entropy per token, the next hidden state). The strategies carry that state
forward as they carry logits on the CNN side, so the same strategy code searches both spaces.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..errors import DartsNasError
from ..nets.rnn import LanguageModelSettings, RNNLanguageModel, activation_penalty, lm_cross_entropy
from ..precision import autocast
from ..genotypes import RNN_PRIMITIVES, RecurrentGenotype, derive_recurrent
from .base import SearchData, SearchModel
from .rnn_cell import SearchRecurrentCell


class DartsRNNSearchModel(SearchModel):
    space = "darts-rnn"
    data_kind = "text"
    genotype_type = RecurrentGenotype
    settings = frozenset({"nodes", "units", "bptt", "max_seq_len_delta", "dropout", "dropout_h", "dropout_x",
                          "dropout_i", "dropout_e", "ar", "tar"})
    settings_groups = (LanguageModelSettings,)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        if config.relaxation == "hard-gumbel":
            return ["hard-gumbel is not offered in the recurrent space (use gumbel)"]
        return []

    @classmethod
    def from_config(cls, config, data: SearchData) -> "DartsRNNSearchModel":
        return cls(data.vocab_size, units=config.units, steps=config.nodes, dropout=config.dropout,
                   dropout_h=config.dropout_h, dropout_x=config.dropout_x, dropout_i=config.dropout_i,
                   dropout_e=config.dropout_e, ar=config.ar, tar=config.tar, relaxation=config.relaxation,
                   max_w=config.max_w)

    def apply_execution_settings(self, config) -> "DartsRNNSearchModel":
        return self.use_precision(config.precision)  # no image layout here

    def alpha_table(self) -> str:
        """softmax(alpha) per node and input."""
        rows, e, lines = self.derivation_weights()["recurrent"].tolist(), 0, []
        for node in range(1, self.steps + 1):
            for j in range(node):
                lines.append(f"node {node} <- {j}: " + "  ".join(f"{p} {w:.3f}" for p, w in
                                                                zip(self.primitives, rows[e])))
                e += 1
        return "\n".join(lines)

    def __init__(self, vocab_size: int, units: int = 300, steps: int = 8, dropout: float = 0.75,
                 dropout_h: float = 0.25, dropout_x: float = 0.75, dropout_i: float = 0.2, dropout_e: float = 0.0,
                 ar: float = 0.0, tar: float = 1e-3, relaxation: str = "softmax", max_w: bool = False):
        super().__init__()
        if relaxation == "hard-gumbel":
            raise DartsNasError("hard-gumbel (GDAS) is not offered in the recurrent space: its ops share each edge's "
                                "matrix, so evaluating one op per edge saves nothing; use gumbel")
        self.hparams = dict(vocab_size=vocab_size, units=units, steps=steps, dropout=dropout, dropout_h=dropout_h,
                            dropout_x=dropout_x, dropout_i=dropout_i, dropout_e=dropout_e, ar=ar, tar=tar,
                            relaxation=relaxation, max_w=max_w)
        self.primitives = RNN_PRIMITIVES
        self.steps, self.ar, self.tar = steps, ar, tar
        cell = SearchRecurrentCell(units, units, steps, dropout_x, dropout_h, RNN_PRIMITIVES)
        self.net = RNNLanguageModel(vocab_size, units, cell, dropout, dropout_i, dropout_e)
        edges = steps * (steps + 1) // 2
        self.alphas = nn.ParameterDict({"recurrent": nn.Parameter(1e-3 * torch.randn(edges, len(RNN_PRIMITIVES)))})
        self.init_search(relaxation, max_w)

    per_example_losses = False  # a batch is windows of token streams carried across steps

    def edge_names(self) -> dict[str, list[str]]:
        """Node i (1..steps) reads every earlier node 0..i-1."""
        return {"recurrent": [f"{j}->{i}" for i in range(1, self.steps + 1) for j in range(i)]}

    def init_hidden(self, batch_size: int, device=None) -> torch.Tensor:
        return self.net.init_hidden(batch_size, device)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor):
        """(logits ``[T, B, V]``, next hidden, cell outputs, cell outputs after dropout)."""
        return self.net(tokens, hidden, self.op_weights()["recurrent"])

    def _outputs(self, batch, weights):
        x, _, hidden = batch
        with autocast(x.device, self.precision):
            return self(x, hidden) if weights is None else functional_call(self, weights, (x, hidden), strict=False)

    def loss(self, batch, weights: dict[str, torch.Tensor] | None = None):
        """Mean cross-entropy per token of ``batch = (tokens, targets, hidden)``, and the next hidden state."""
        logits, last, _, _ = self._outputs(batch, weights)
        return lm_cross_entropy(logits, batch[1]), last

    def training_loss(self, batch):
        """The weights' objective: the cross-entropy plus the activation regularizers (AR, TAR)."""
        logits, last, raw, dropped = self._outputs(batch, None)
        loss = lm_cross_entropy(logits, batch[1])
        return loss, loss + activation_penalty(raw, dropped, self.ar, self.tar), last

    def op_costs(self) -> dict[str, torch.Tensor]:
        raise DartsNasError("the recurrent ops of an edge share its matrix, so they all cost the same: the resource "
                            "penalty does not apply to the recurrent space")

    def genotype(self) -> RecurrentGenotype:
        return derive_recurrent(self.derivation_weights()["recurrent"], self.primitives, self.steps)

    # parameter_free_ops stays None: every recurrent op has its edge's matrix, so that signal does not apply.
