"""Parameter counts and multiply-adds of an evaluation network, counted the papers' way.

Parameters: the papers exclude the auxiliary head (it is dropped after training); both figures are given.
Multiply-adds: PyTorch's own FLOP counter (``torch.utils.flop_counter.FlopCounterMode``) over one inference forward
(eval mode: no auxiliary head, no drop-path) of a single image, halved (it counts a multiply-add as 2 FLOPs). It
counts convolutions and matrix products, which is what the papers' multiply-add figures count; BN, ReLU, pooling
and additions are not in it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .cell import EvalNetwork


@dataclass(frozen=True)
class NetworkProfile:
    params: int           # without the auxiliary head (the papers' figure)
    params_total: int     # with it
    multiply_adds: int    # one image, inference
    input_size: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: torch.nn.Module, include_auxiliary: bool = False) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if include_auxiliary or not name.startswith("auxiliary_head."))


def count_multiply_adds(model: torch.nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of one inference forward at input_size x input_size, by PyTorch's FLOP counter (FLOPs / 2)."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros(1, in_channels, input_size, input_size, device=param.device, dtype=param.dtype)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() // 2
    finally:
        model.train(was_training)


def profile_network(model: EvalNetwork, input_size: int) -> NetworkProfile:
    from . import check_input_size

    check_input_size(model.hparams["kind"], input_size)
    return NetworkProfile(params=count_parameters(model), params_total=count_parameters(model, True),
                          multiply_adds=count_multiply_adds(model, input_size, model.hparams["in_channels"]),
                          input_size=input_size)
