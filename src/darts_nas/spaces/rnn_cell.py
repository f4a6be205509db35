"""The recurrent search cell of the DARTS RNN space (arXiv:1806.09055, section 2.1): every
node reads every earlier state through its own matrix, shared by the candidate activations of that edge, and mixes
``sum_j sum_f w_{j,f} (s_j + sigmoid(c_j)(f(h_j) - s_j))`` with the relaxed op weights (``none`` adds nothing);
s0 and each node are batch-normalized (no affine, batch statistics); the output is the mean of all nodes. The
evaluation cell and the language model around both live in :mod:`darts_nas.nets.rnn`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DartsNasError
from ..genotypes import RNN_PRIMITIVES
from ..nets.rnn import ACTIVATIONS, _Cell


def _batch_norm(s: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(s, None, None, training=True, eps=1e-5)


class SearchRecurrentCell(_Cell):
    """The search cell: every node reads every earlier state; ``weights`` are the relaxed op weights
    ``[steps*(steps+1)/2, len(primitives)]``, node i's rows being its inputs 0..i-1."""

    def __init__(self, ninp: int, nhid: int, steps: int = 8, dropout_x: float = 0.75, dropout_h: float = 0.25,
                 primitives=RNN_PRIMITIVES):
        super().__init__(ninp, nhid, steps, dropout_x, dropout_h)
        unknown = [p for p in primitives if p != "none" and p not in ACTIVATIONS]
        if unknown:
            raise DartsNasError(f"unknown recurrent op(s) {', '.join(unknown)} (known: none, "
                                f"{', '.join(ACTIVATIONS)})")
        self.primitives = tuple(primitives)
        self._ops = [k for k, p in enumerate(self.primitives) if p != "none"]
        self._acts = [ACTIVATIONS[self.primitives[k]] for k in self._ops]

    def prepare(self, weights):
        """Per node i: the weights of its inputs' non-``none`` ops ``[i+1, K, 1, 1]`` and their sums ``[i+1, 1, 1]``
        ("none" contributes nothing)."""
        ops = weights[:, self._ops]
        per_node, offset = [], 0
        for i in range(self.steps):
            w = ops[offset: offset + i + 1]
            per_node.append((w[:, :, None, None], w.sum(1)[:, None, None]))
            offset += i + 1
        return per_node

    def nodes(self, s0, h_mask, weights):
        states = _batch_norm(s0).unsqueeze(0)  # [1, B, H]
        for i, (w, w_sum) in enumerate(weights):
            masked = states if h_mask is None else states * h_mask
            c, h = (masked @ self.Ws[i]).split(self.nhid, -1)  # [i+1, B, H] each
            c = torch.sigmoid(c)
            # sum_k w_k (s + c (f_k(h) - s)) = (sum_k w_k)(1 - c) s + c sum_k w_k f_k(h)
            mixed = sum(w[:, k] * act(h) for k, act in enumerate(self._acts))
            s = (w_sum * (1 - c) * states + c * mixed).sum(0)
            states = torch.cat([states, _batch_norm(s).unsqueeze(0)])
        return states[1:].mean(0)
