"""Search spaces.

A search model (one per space) is an ``nn.Module`` that holds the network weights and, apart from them, the
architecture parameters (alphas), and offers what the strategies need and nothing more:

- ``weight_parameters()`` / ``named_weight_parameters()`` and ``arch_parameters()``: two disjoint sets, each with
  its own optimizer;
- ``loss(batch, weights=None) -> (loss, output)``: the training criterion on a batch; ``weights`` (a dict from
  ``named_weight_parameters()`` names to tensors) evaluates the same network at other weights, functionally, as
  the second-order hypergradient needs (w', w + r v, w - r v);
- ``genotype()``: the discrete architecture read off the current alphas;
- ``op_weights()``: the relaxed alphas, for logging.
"""

from .darts_cnn import DartsCNNSearchModel, SearchCell, SearchNetwork, MixedOp

__all__ = ["DartsCNNSearchModel", "SearchCell", "SearchNetwork", "MixedOp"]
