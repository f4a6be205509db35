"""Search spaces, one class each, registered once.

A search space is a :class:`~darts_nas.spaces.base.SearchModel` subclass: an ``nn.Module`` that holds the network
weights and, apart from them, the architecture parameters (alphas), and offers what the strategies need:

- ``weight_parameters()`` / ``named_weight_parameters()`` and ``arch_parameters()``: two disjoint sets, each with
  its own optimizer;
- ``loss(batch, weights=None) -> (loss, output)``: the training criterion on a batch; ``weights`` (a dict from
  ``named_weight_parameters()`` names to tensors) evaluates the same network at other weights, functionally, as
  the second-order hypergradient needs (w', w + r v, w - r v). The output is the logits, or for the recurrent
  space (whose batches are (tokens, targets, hidden)) the next hidden state; ``training_loss(batch) -> (loss,
  objective, output)`` is what the weights' step minimizes (the loss plus any activation penalty);
- ``op_weights()`` (the relaxed alphas of a forward pass), ``probabilities()`` (their deterministic form, for
  logs) and ``op_costs()`` (parameters per candidate op, for resource penalties);
- ``genotype()``: the discrete architecture read off the current alphas, and ``parameter_free_ops(genotype)``;

and what the plumbing needs: ``space``, ``data_kind``, ``genotype_type``, ``settings``, ``config_problems``,
``from_config``, ``apply_execution_settings``, ``alpha_table`` and ``alpha_record``. The registry below drives
construction, the command line's choices and checkpoint reload.
"""

from __future__ import annotations

from ..data.loader import ImageSearchSettings
from ..data.seq2seq import Seq2SeqSettings
from ..errors import DartsNasError, registry_lookup
from ..genotypes import NB201_PRIMITIVES, PARAMETER_FREE, NB201Arch
from .base import SearchData, SearchModel
from .darts_cnn import DartsCNNSearchModel, SearchCell, SearchNetwork
from .darts_rnn import DartsRNNSearchModel
from .hypercuboid import HyperCuboidSearchModel
from .mixed import MixedOp
from .nb201 import NB201SearchModel
from .prime import PrimeSearchModel
from .proxyless import ProxylessSearchModel
from .sharp import SharpDartsSearchModel, SharperSearchModel, SharpSepConvSearchModel
from .rev_transformer import RevTransformerLMSearchModel, RevTransformerSearchModel
from .unas_darts import UnasDartsSearchModel

SPACES: dict[str, type[SearchModel]] = {}
# The kinds of data a space can declare, each with the settings groups of its data (SearchConfig's fields); each
# has one search run (darts_nas.run.dispatch.SEARCH_RUNS).
DATA_KINDS: dict[str, tuple] = {"images": (ImageSearchSettings,), "text": (), "seq2seq": (Seq2SeqSettings,)}


def register_space(cls: type[SearchModel]) -> type[SearchModel]:
    """Make a space known by its ``space`` name: to --space, the config checks, the runs and checkpoint reload.
    Usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, SearchModel)) or not cls.space:
        raise DartsNasError(f"register_space: {cls!r} is not a SearchModel subclass with a space name")
    if cls.data_kind not in DATA_KINDS:
        raise DartsNasError(f"register_space: {cls.space}: data_kind must be one of {', '.join(DATA_KINDS)}")
    SPACES[cls.space] = cls
    return cls


def get_space(name: str) -> type[SearchModel]:
    return registry_lookup(SPACES, name, "search space")


for _space in (DartsCNNSearchModel, NB201SearchModel, DartsRNNSearchModel, UnasDartsSearchModel,
               ProxylessSearchModel, SharpDartsSearchModel, SharperSearchModel, SharpSepConvSearchModel,
               PrimeSearchModel, HyperCuboidSearchModel, RevTransformerSearchModel, RevTransformerLMSearchModel):
    register_space(_space)


__all__ = ["DartsCNNSearchModel", "DartsRNNSearchModel", "HyperCuboidSearchModel", "MixedOp", "NB201Arch", "NB201SearchModel",
           "NB201_PRIMITIVES", "PARAMETER_FREE", "PrimeSearchModel", "ProxylessSearchModel", "RevTransformerSearchModel",
           "RevTransformerLMSearchModel", "DATA_KINDS", "SharpDartsSearchModel",
           "SharperSearchModel", "SharpSepConvSearchModel", "SPACES", "SearchCell", "SearchData", "SearchModel",
           "SearchNetwork", "UnasDartsSearchModel", "get_space", "register_space"]
