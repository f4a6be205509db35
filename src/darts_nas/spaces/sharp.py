"""sharpDARTS' two cell spaces (Hundt, Jain, Hager, arXiv:1903.09900): DARTS' supernet and derivation over
sharpDARTS' op sets (:mod:`darts_nas.ops.sharp`).

- ``sharp-darts``: the 9-op sharpDARTS space (none, max pool, skip, and SharpSepConvs: sep, dil, flood, dil-flood,
  choke, dil-choke), the space SHARP_DARTS was found in;
- ``sharper``: the 12-op "sharper" space (pools, skip, sep 3/5/7, dil 3/5, flood 3/5, dil-flood 3), the space of
  SHARPER_MAX_W and SHARPER_SCALAR;
- ``sharpsepconv``: DARTS' 8 op names over sharpDARTS' implementations (the authors' ``--primitives
  DARTS_PRIMITIVES``), the space of SHARPSEPCONV_DARTS.

Both derive a :class:`~darts_nas.genotypes.SharpGenotype` (DARTS' rule: two strongest non-`none` edges per node),
which trains in DARTS' CIFAR and ImageNet networks with sharpDARTS' ops. Max-W (``--max-w``) and Cosine Power
Annealing (``--lr-schedule cosine-power``) are the run's settings, as in any space.
"""

from __future__ import annotations

from ..genotypes import PRIMITIVES, SharpGenotype
from ..ops import SHARP_PARAMETER_FREE, SHARP_PRIMITIVES, SHARPER_PRIMITIVES, sharp_search_op
from .darts_cnn import DartsCNNSearchModel


class SharpDartsSearchModel(DartsCNNSearchModel):
    """DARTS' supernet over sharpDARTS' 9 ops (``--space sharp-darts``)."""

    space = "sharp-darts"
    genotype_type = SharpGenotype
    default_primitives = SHARP_PRIMITIVES
    op_factory = staticmethod(sharp_search_op)
    settings = frozenset({"layers", "nodes", "stem_multiplier", "partial_channels", "edge_normalization",
                          "checkpoint_cells", "channels_last", "cuda_graphs", "split_file", "resource_weight",
                          "stop_param_free"})

    @staticmethod
    def parameter_free_ops(genotype) -> int:
        return sum(op in SHARP_PARAMETER_FREE for op, _ in (*genotype.normal, *genotype.reduce))


class SharperSearchModel(SharpDartsSearchModel):
    """DARTS' supernet over sharpDARTS' 12 "sharper" ops (``--space sharper``)."""

    space = "sharper"
    default_primitives = SHARPER_PRIMITIVES


class SharpSepConvSearchModel(SharpDartsSearchModel):
    """DARTS' 8 op names with sharpDARTS' implementations (``--space sharpsepconv``): every sep/dil conv a
    SharpSepConv, pools ResizablePools. The authors' ``--primitives DARTS_PRIMITIVES`` search, where
    SHARPSEPCONV_DARTS was found."""

    space = "sharpsepconv"
    default_primitives = PRIMITIVES
