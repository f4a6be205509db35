"""The ProxylessNAS / MobileNetV2 search space as UNAS searches it (ProxylessNAS, arXiv:1812.00332; UNAS,
arXiv:1912.07651): the fixed skeleton of :mod:`darts_nas.genotypes.mobile` with a mixed op at each of the 21
searchable layers.

- The 6 channel-changing layers (1, 5, 9, 13, 17, 21) choose among the 6 MBConvs (alphas ``change``, ``[6, 6]``):
  their output is sum_o w_o MBConv_o(x).
- The 15 other layers choose among ``zero`` and the 6 MBConvs (alphas ``skippable``, ``[15, 7]``, ``zero`` first):
  their output is x + sum_o w_o MBConv_o(x), so ``zero`` skips the layer.

Alphas start at 0 (UNAS). With one-hot weights (hard Gumbel, or the estimators' discrete architecture) only the
chosen MBConv of each layer runs. BN is affine-free with batch statistics (eps 1e-3) in the supernet, as in every
search space here, so the supernet is a pure function of its weights. The derived architecture is each layer's
strongest op.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..genotypes.mobile import (LAYERS, MB_OPS, MOBILE_PRIMITIVES, STEM_CHANNELS, ProxylessArch, layer_plan,
                                make_divisible, HEAD_CHANNELS)
from ..nets.mobile import MobileStem, conv_bn_relu6
from ..ops import mobile_op
from .base import SearchData, SearchModel
from ..settings import SettingsGroup, setting

GROUPS = ("change", "skippable")


class MixedLayer(nn.Module):
    """One searchable layer: every MBConv candidate; ``skip`` layers add their input (the shortcut, and what
    ``zero`` leaves). Column k of the weights is ``columns[k]`` (``zero`` has no module)."""

    def __init__(self, C_in: int, C_out: int, stride: int, skip: bool):
        super().__init__()
        self.skip = skip
        self.ops = nn.ModuleList(mobile_op(op, C_in, C_out, stride, search=True) for op in MB_OPS)
        self.offset = 1 if skip else 0  # column of the first MBConv (after `zero`)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, selected: int | None = None) -> torch.Tensor:
        if selected is not None:
            k = selected - self.offset
            out = weights[selected] * (self.ops[k](x) if k >= 0 else x.mul(0.0))
        else:
            w = weights.unbind()
            out = None
            for k, op in enumerate(self.ops):
                term = w[k + self.offset] * op(x)
                out = term if out is None else out + term
        return x + out if self.skip else out


class ProxylessSupernet(nn.Module):
    def __init__(self, C: int, num_classes: int, in_channels: int, stem_stride: int):
        super().__init__()
        width = C / STEM_CHANNELS
        plan = layer_plan(width)
        self.stem = MobileStem(in_channels, C, plan[0][0], stem_stride, search=True)
        self.layers = nn.ModuleList(MixedLayer(c_in, c_out, stride, skip) for c_in, c_out, stride, skip in plan)
        self.group_rows = []  # (group, row) of each layer's alphas
        counts = {g: 0 for g in GROUPS}
        for _, _, _, skip in plan:
            g = "skippable" if skip else "change"
            self.group_rows.append((g, counts[g]))
            counts[g] += 1
        head = make_divisible(HEAD_CHANNELS * width) if width > 1 else HEAD_CHANNELS
        self.head = conv_bn_relu6(plan[-1][1], head, 1, 1, search=True)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x, weights: dict[str, torch.Tensor], selected: dict[str, list[int]] | None = None):
        x = self.stem(x)
        for layer, (g, row) in zip(self.layers, self.group_rows):
            x = layer(x, weights[g][row], None if selected is None else selected[g][row])
        x = self.head(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@dataclass
class ProxylessSettings(SettingsGroup):
    """The ProxylessNAS supernet's stem: its stride follows the image size."""

    stem_stride: int = setting(2, "proxyless: stride of the stem conv (2 on ImageNet-size images, as in "
                               "ProxylessNAS; 1 on 32x32 CIFAR images)", space_setting=True)


class ProxylessSearchModel(SearchModel):
    """The ProxylessNAS space (``--space proxyless``); see the module docstring. ``--channels`` is the stem width
    (40 in the papers; other widths scale with it), ``--stem-stride`` 2 on ImageNet-size images, 1 on CIFAR."""

    space = "proxyless"
    genotype_type = ProxylessArch
    settings = frozenset({"channels_last", "split_file", "stem_stride", "stop_param_free", "resource_weight"})
    settings_groups = (ProxylessSettings,)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        problems = []
        if config.stem_stride not in (1, 2):
            problems.append("--stem-stride must be 1 or 2")
        if config.channels < 8:
            problems.append("the proxyless space needs --channels (its stem width) of at least 8")
        return problems

    @classmethod
    def from_config(cls, config, data: SearchData) -> "ProxylessSearchModel":
        return cls(C=config.channels, num_classes=data.num_classes, in_channels=data.in_channels,
                   stem_stride=config.stem_stride, relaxation=config.relaxation, max_w=config.max_w)

    def __init__(self, C=STEM_CHANNELS, num_classes=1000, in_channels=3, stem_stride=2, relaxation="softmax",
                 max_w=False):
        super().__init__()
        self.hparams = dict(C=C, num_classes=num_classes, in_channels=in_channels, stem_stride=stem_stride,
                            relaxation=relaxation, max_w=max_w)
        self.primitives = MOBILE_PRIMITIVES
        self.net = ProxylessSupernet(C, num_classes, in_channels, stem_stride)
        self.alphas = nn.ParameterDict({
            "change": nn.Parameter(torch.zeros(LAYERS - 15, len(MB_OPS))),
            "skippable": nn.Parameter(torch.zeros(15, len(MOBILE_PRIMITIVES))),
        })
        self.init_search(relaxation, max_w)

    def columns(self) -> dict[str, list[str]]:
        return {"change": list(MB_OPS), "skippable": list(MOBILE_PRIMITIVES)}

    def edge_names(self) -> dict[str, list[str]]:
        names = {g: [] for g in GROUPS}
        for layer, (g, _) in enumerate(self.net.group_rows, 1):
            names[g].append(f"layer {layer}")
        return names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.op_weights()
        return self.net(self.prepare_input(x), w, self.selections(w))

    def genotype(self) -> ProxylessArch:
        w = self.derivation_weights()
        cols = self.columns()
        idx = {g: w[g].argmax(-1).tolist() for g in GROUPS}
        return ProxylessArch(tuple(cols[g][idx[g][row]] for g, row in self.net.group_rows))

    def alpha_table(self) -> str:
        w = self.derivation_weights()
        cols = self.columns()
        lines = ["layer  " + " ".join(f"{p:>9}" for p in MOBILE_PRIMITIVES)]
        for layer, (g, row) in enumerate(self.net.group_rows, 1):
            values = dict(zip(cols[g], w[g][row].tolist()))
            lines.append(f"{layer:>5}  " + " ".join(f"{values[p]:>9.3f}" if p in values else f"{'-':>9}"
                                                     for p in MOBILE_PRIMITIVES))
        return "\n".join(lines)

    @staticmethod
    def parameter_free_ops(genotype: ProxylessArch) -> int:
        """Skipped layers (of 15 that may be)."""
        return genotype.parameter_free_ops()

    def op_costs(self) -> dict[str, torch.Tensor]:
        """Parameters (millions) of each candidate of each layer (``zero``: none)."""
        out = {}
        for g in GROUPS:
            rows = []
            for layer, (group, _) in zip(self.net.layers, self.net.group_rows):
                if group != g:
                    continue
                costs = [sum(p.numel() for p in op.parameters()) / 1e6 for op in layer.ops]
                rows.append(([0.0] if layer.skip else []) + costs)
            out[g] = torch.tensor(rows, device=self.alphas[g].device)
        return out
