"""The network of a HyperCuboid path (sharpDARTS' grid search, arXiv:1903.09900), trained from scratch: a 3x3
conv stem and BN to the path's first width, the path's steps in order (SharpSepConv 3x3 or ResizablePool, at their
strides and widths), a SharpSepConv head to 768 channels, global pooling and a linear classifier. The path fixes
the widths and depth, so --channels and --layers do not apply; no auxiliary head, no drop-path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DartsNasError
from ..genotypes import HyperPath
from ..ops import SharpSepConv, hyper_op

HEAD_CHANNELS = 768


class HyperPathNetwork(nn.Module):
    kind = "hyperpath"
    channels_last = False
    drop_path_prob = 0.0
    has_auxiliary = False
    depth_unit = "path steps"

    def __init__(self, genotype: HyperPath, C: int = 0, num_classes: int = 10, layers: int = 0,
                 auxiliary: bool = False, in_channels: int = 3, head: int = HEAD_CHANNELS):
        super().__init__()
        if not isinstance(genotype, HyperPath):
            raise DartsNasError(f"the hyperpath network is built from a HyperPath, got {type(genotype).__name__}")
        self.genotype = genotype
        # C and layers are the path's own; recorded as given so a checkpoint rebuilds the same call
        self.hparams = dict(kind=self.kind, genotype=genotype.to_dict(), C=C, num_classes=num_classes, layers=layers,
                            auxiliary=False, in_channels=in_channels, head=head)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, genotype.stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(genotype.stem))
        self.blocks = nn.Sequential(*(hyper_op(op, c_in, c_out, stride, search=False)
                                      for stride, c_in, c_out, op in genotype.steps))
        self.head = SharpSepConv(genotype.out_channels, head, 3)
        self.auxiliary_head = None
        self.classifier = nn.Linear(head, num_classes)

    @property
    def shape_text(self) -> str:
        """The training log's description: the path's own widths and steps."""
        g = self.genotype
        return f"stem {g.stem}, {len(g.steps)} path steps to {g.out_channels} channels, head {self.hparams['head']}"

    def forward_with_aux(self, x: torch.Tensor):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]

    def use_channels_last(self, enabled: bool = True) -> "HyperPathNetwork":
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def use_drop_path_tensor(self, enabled: bool = True) -> "HyperPathNetwork":
        return self
