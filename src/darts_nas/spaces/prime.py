"""DARTS-PRIME's cell space (constrained bilevel DARTS, arXiv:2106.11655; the facts of its authors' code,
k8lion/DARTS-PRIME @4953e40, nothing copied): DARTS' CNN supernet with two changes the authors make with their
clamp activation (``--crb``):

- the 7 ops of DARTS without `none` (with independent weights an op is dropped by pruning its weight to zero);
- each node's sum normalized by a BatchNorm without affine parameters, since the clamped weights of a node's
  edges no longer sum to one.

Its default relaxation is ``clamp`` (each alpha clamped to [0, 1], ops pruned for good at zero; see
:mod:`darts_nas.spaces.relaxation`); the derivation is DARTS' rule on the clamped weights. The schedule (Fisher
information) and the proximity / ADMM regularizers are the run's settings (``--arch-schedule``,
``--discretization``), usable in any space.
"""

from __future__ import annotations

from ..genotypes import PRIMITIVES
from .base import SearchData
from .darts_cnn import DartsCNNSearchModel

PRIME_PRIMITIVES: tuple[str, ...] = tuple(p for p in PRIMITIVES if p != "none")


class PrimeSearchModel(DartsCNNSearchModel):
    """DARTS' supernet without `none`, a BatchNorm on each node's sum (``--space darts-prime``)."""

    space = "darts-prime"
    default_primitives = PRIME_PRIMITIVES
    node_norm = True
    settings = frozenset({"layers", "nodes", "stem_multiplier", "checkpoint_cells", "channels_last", "cuda_graphs",
                          "split_file", "resource_weight", "stop_param_free"})

    @classmethod
    def from_config(cls, config, data: SearchData) -> "PrimeSearchModel":
        return cls(C=config.channels, num_classes=data.num_classes, layers=config.layers, steps=config.nodes,
                   multiplier=config.nodes, stem_multiplier=config.stem_multiplier, in_channels=data.in_channels,
                   relaxation=config.relaxation, max_w=config.max_w)
