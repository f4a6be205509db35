"""The candidate operations of every space, one module per family, each with its factory ``<family>_op``:

- :mod:`.darts`: DARTS' CNN ops, ``darts_op(name, C, stride, search)``, and PC-DARTS' partial-channel helpers;
- :mod:`.sharp`: sharpDARTS' ops, ``sharp_op(name, C, stride, search)`` (``sharp_search_op`` its search version);
- :mod:`.nb201`: NAS-Bench-201's, ``nb201_op(name, C, stride)``;
- :mod:`.unas`: UNAS' DARTS cell ops, ``unas_op(name, C, stride)``;
- :mod:`.hypercuboid`: sharpDARTS' HyperCuboid ops, ``hyper_op(name, C_in, C_out, stride, search)``;
- :mod:`.mobile`: MobileNetV2's MBConv, ``mobile_op(name, C_in, C_out, stride, search)``;
- :mod:`.rl`: the RL-DARTS encoder cells' ops, ``rl_op(name, C)`` (stride 1);
- :mod:`.transformer`: the reversible Transformer's op bank, ``transformer_op(name, d, causal)``.

Arguments come in one order: the op's name, its channels, its stride, then the version flags. The search version
(``search=True``) has BatchNorm without affine parameters and with batch statistics; the evaluation version has
affine BN with running statistics. This package is the lowest layer: it imports nothing of the package but
:mod:`darts_nas.errors`.
"""

from .darts import (Conv7x1_1x7, DilConv, FactorizedReduce, Identity, Pool, ReLUConvBN, ReLUOp, SepConv, Zero,
                    batch_norm, channel_shuffle, darts_op, is_channels_last, join_partial, split_partial)
from .hypercuboid import hyper_op
from .mobile import MBConv, mobile_op
from .nb201 import nb201_op
from .rl import rl_op
from .sharp import (CHOKE_CHANNELS, SHARP_OPS, SHARP_PARAMETER_FREE, SHARP_PRIMITIVES, SHARPER_PRIMITIVES, ResizablePool,
                    SharpSepConv, mid_channels, sharp_op, sharp_search_op)
from .transformer import transformer_op
from .unas import unas_op

__all__ = ["Conv7x1_1x7", "DilConv", "FactorizedReduce", "Identity", "Pool", "ReLUConvBN", "ReLUOp", "SepConv",
           "Zero", "batch_norm", "channel_shuffle", "darts_op", "is_channels_last", "join_partial", "split_partial",
           "hyper_op", "MBConv", "CHOKE_CHANNELS", "mobile_op", "nb201_op", "rl_op", "SHARP_OPS", "SHARP_PARAMETER_FREE",
           "SHARP_PRIMITIVES", "SHARPER_PRIMITIVES", "ResizablePool", "SharpSepConv", "mid_channels", "sharp_op",
           "sharp_search_op", "transformer_op", "unas_op"]
