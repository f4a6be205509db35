"""The CIFAR evaluation network (DARTS, arXiv:1806.09055, section 3.3): a 3x3 conv stem to 3C channels, `layers`
cells with reductions (channels doubled) at 1/3 and 2/3 depth, auxiliary head after cell 2*layers//3, global
average pooling and a linear classifier. At C=36, 20 cells the channel trace is the paper's."""

from __future__ import annotations

from torch import nn

from ..genotypes import Genotype
from ..ops import CHOKE_CHANNELS
from .cell import EvalNetwork


class NetworkCIFAR(EvalNetwork):
    kind = "cifar"

    def __init__(self, genotype: Genotype, C: int = 36, num_classes: int = 10, layers: int = 20,
                 auxiliary: bool = True, in_channels: int = 3, stem_multiplier: int = 3, choke: int = CHOKE_CHANNELS):
        super().__init__()
        self.genotype = genotype
        self.hparams = dict(kind=self.kind, genotype=genotype.to_dict(), C=C, num_classes=num_classes, layers=layers,
                            auxiliary=auxiliary, in_channels=in_channels, stem_multiplier=stem_multiplier)
        self.record_choke(choke)
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        self._build_cells(genotype, C, layers, C_stem, C_stem, False, num_classes, auxiliary, aux_stride=3,
                          aux_bn=True, choke=choke)

    def stem_forward(self, x):
        s = self.stem(x)
        return s, s
