"""The ImageNet evaluation network, mobile setting (DARTS, arXiv:1806.09055, section 3.3): three stride-2 3x3
convs as the stem (224 -> 28), so the first cell sees a reduction before it; `layers` cells with reductions at 1/3
and 2/3 depth; auxiliary head after cell 2*layers//3; global average pooling; linear classifier."""

from __future__ import annotations

from torch import nn

from ..genotypes import Genotype
from ..ops import CHOKE_CHANNELS
from .cell import EvalNetwork


class NetworkImageNet(EvalNetwork):
    kind = "imagenet"

    def __init__(self, genotype: Genotype, C: int = 48, num_classes: int = 1000, layers: int = 14,
                 auxiliary: bool = True, in_channels: int = 3, choke: int = CHOKE_CHANNELS):
        super().__init__()
        self.genotype = genotype
        self.hparams = dict(kind=self.kind, genotype=genotype.to_dict(), C=C, num_classes=num_classes, layers=layers,
                            auxiliary=auxiliary, in_channels=in_channels)
        self.record_choke(choke)
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(C))
        self._build_cells(genotype, C, layers, C, C, True, num_classes, auxiliary, aux_stride=2, aux_bn=False,
                          choke=choke)

    def stem_forward(self, x):
        s0 = self.stem0(x)
        return s0, self.stem1(s0)
