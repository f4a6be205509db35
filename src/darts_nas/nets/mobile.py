"""The evaluation network of the ProxylessNAS / MobileNetV2 space (ProxylessNAS, arXiv:1812.00332; UNAS,
arXiv:1912.07651): the skeleton of :mod:`darts_nas.genotypes.mobile` with each searchable layer's chosen MBConv
(or the layer skipped), BN eps 1e-3, ReLU6.

``C`` is the stem width (40 in the papers); every other width scales with C / 40, rounded to a multiple of 8 as
MobileNetV2 rounds. ``stem_stride`` is 2 on ImageNet (224 -> 7 x 7 before pooling) and 1 on 32 x 32 CIFAR images
(-> 2 x 2). There is no auxiliary head and no drop-path (the training loop's settings for them do nothing here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DartsNasError
from ..genotypes.mobile import HEAD_CHANNELS, LAYERS, STEM_CHANNELS, ProxylessArch, layer_plan, make_divisible
from ..ops import MBConv, mobile_op


def conv_bn_relu6(C_in: int, C_out: int, kernel: int, stride: int, search: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(C_in, C_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(C_out, eps=1e-3, affine=not search, track_running_stats=not search),
                         nn.ReLU6(inplace=False))


class MobileStem(nn.Module):
    """3x3 conv (stride `stem_stride`) to C, then an MBConv k3 e1 to the first stage's input width."""

    def __init__(self, in_channels: int, C: int, C_out: int, stride: int, search: bool):
        super().__init__()
        self.conv = conv_bn_relu6(in_channels, C, 3, stride, search)
        self.first = MBConv(C, C_out, 3, 1, 1, search)

    def forward(self, x):
        return self.first(self.conv(x))


class ProxylessNetwork(nn.Module):
    """A ProxylessArch trained from scratch. ``forward_with_aux`` returns (logits, None): the training loop's
    interface of the cell networks."""

    kind = "proxyless"
    channels_last = False
    drop_path_prob = 0.0       # no drop-path in this network
    has_auxiliary = False
    depth_unit = "searchable layers"

    def __init__(self, genotype: ProxylessArch, C: int = STEM_CHANNELS, num_classes: int = 1000,
                 layers: int = LAYERS, auxiliary: bool = False, in_channels: int = 3, stem_stride: int = 2):
        super().__init__()
        if not isinstance(genotype, ProxylessArch):
            raise DartsNasError(f"the proxyless network is built from a ProxylessArch, got {type(genotype).__name__}")
        if layers != LAYERS:
            raise DartsNasError(f"the ProxylessNAS network has {LAYERS} searchable layers (--layers {LAYERS}), got "
                                f"{layers}; the unas-proxyless-*-eval presets set it")
        if not isinstance(C, int) or C < 8:
            raise DartsNasError(f"the ProxylessNAS network's stem width C must be an integer of at least 8, got {C!r}")
        if stem_stride not in (1, 2):
            raise DartsNasError(f"stem stride must be 1 or 2, got {stem_stride}")
        width = C / STEM_CHANNELS
        self.genotype = genotype
        self.hparams = dict(kind=self.kind, genotype=genotype.to_dict(), C=C, num_classes=num_classes, layers=layers,
                            auxiliary=False, in_channels=in_channels, stem_stride=stem_stride)
        plan = layer_plan(width)
        self.stem = MobileStem(in_channels, C, plan[0][0], stem_stride, search=False)
        self.blocks = nn.ModuleList()
        self.shortcut: list[bool] = []
        for (c_in, c_out, stride, may_skip), op in zip(plan, genotype.ops):
            if op == "zero":
                self.blocks.append(nn.Identity())
                self.shortcut.append(False)
                continue
            self.blocks.append(mobile_op(op, c_in, c_out, stride, search=False))
            self.shortcut.append(may_skip)
        head = make_divisible(HEAD_CHANNELS * width) if width > 1 else HEAD_CHANNELS
        self.head = conv_bn_relu6(plan[-1][1], head, 1, 1, search=False)
        self.auxiliary_head = None
        self.classifier = nn.Linear(head, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, shortcut in zip(self.blocks, self.shortcut):
            x = x + block(x) if shortcut else block(x)
        return self.head(x)

    @staticmethod
    def train_args(config) -> dict:
        """What the network takes from a training configuration beyond the cell networks' arguments: the stem
        stride, 2 for ImageNet-size inputs (64 and more), else 1."""
        return {"stem_stride": 2 if config.image_size >= 64 else 1}

    def forward_with_aux(self, x: torch.Tensor):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]

    def use_channels_last(self, enabled: bool = True) -> "ProxylessNetwork":
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    def use_drop_path_tensor(self, enabled: bool = True) -> "ProxylessNetwork":
        return self
