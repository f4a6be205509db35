"""Search spaces.

A search model (one per space, all built on :class:`~darts_nas.spaces.base.SearchModel`) is an ``nn.Module`` that
holds the network weights and, apart from them, the architecture parameters (alphas), and offers what the
strategies need and nothing more:

- ``weight_parameters()`` / ``named_weight_parameters()`` and ``arch_parameters()``: two disjoint sets, each with
  its own optimizer;
- ``loss(batch, weights=None) -> (loss, output)``: the training criterion on a batch; ``weights`` (a dict from
  ``named_weight_parameters()`` names to tensors) evaluates the same network at other weights, functionally, as
  the second-order hypergradient needs (w', w + r v, w - r v). The output is the logits, or for the recurrent
  space (whose batches are (tokens, targets, hidden)) the next hidden state; ``training_loss(batch) -> (loss,
  objective, output)`` is what the weights' step minimizes (the loss plus any activation penalty);
- ``op_weights()`` (the relaxed alphas of a forward pass), ``probabilities()`` (their deterministic form, for
  logs) and ``op_costs()`` (parameters per candidate op, for resource penalties);
- ``genotype()``: the discrete architecture read off the current alphas, and ``parameter_free_ops(genotype)``.
"""

from ..errors import DartsNasError
from .base import PARAMETER_FREE, SearchModel
from .darts_cnn import DartsCNNSearchModel, MixedOp, SearchCell, SearchNetwork
from .darts_rnn import DartsRNNSearchModel
from .nb201 import NB201_PRIMITIVES, NB201Arch, NB201SearchModel

SPACES = {"darts-cnn": DartsCNNSearchModel, "nb201": NB201SearchModel, "darts-rnn": DartsRNNSearchModel}


def search_model_class(space: str):
    try:
        return SPACES[space]
    except KeyError:
        raise DartsNasError(f"unknown search space {space!r} (known: {', '.join(SPACES)})") from None


__all__ = ["DartsCNNSearchModel", "DartsRNNSearchModel", "MixedOp", "NB201Arch", "NB201SearchModel", "NB201_PRIMITIVES", "PARAMETER_FREE",
           "SPACES", "SearchCell", "SearchModel", "SearchNetwork", "search_model_class"]
