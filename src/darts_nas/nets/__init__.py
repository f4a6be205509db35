"""Evaluation networks built from genotypes, and the model zoo.

``create_model("darts_v2_cifar10")`` builds the paper's network for a published genotype (timm-style names:
``<genotype>_<dataset>``, any keyword overriding the defaults); ``build_network(genotype, "imagenet")`` does the same
for any genotype, and ``network_from_hparams`` rebuilds a saved one.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DartsNasError
from ..genotypes import (MOBILE_PUBLISHED, PUBLISHED, Genotype, HyperPath, ProxylessArch, genotype_from_dict,
                         get_genotype, load_genotype)
from .cell import AuxiliaryHead, EvalCell, EvalNetwork, drop_path
from .cifar import NetworkCIFAR
from .imagenet import NetworkImageNet
from .hyperpath import HyperPathNetwork
from .mobile import ProxylessNetwork

# The papers' network for each dataset: class, and the default arguments.
DATASET_NETWORKS = {
    "cifar10": (NetworkCIFAR, dict(C=36, layers=20, num_classes=10)),
    "cifar100": (NetworkCIFAR, dict(C=36, layers=20, num_classes=100)),
    "imagenet": (NetworkImageNet, dict(C=48, layers=14, num_classes=1000)),
}
NETWORK_KINDS = {"cifar": NetworkCIFAR, "imagenet": NetworkImageNet, "proxyless": ProxylessNetwork,
                 "hyperpath": HyperPathNetwork}
# The genotype types an image network is built from; a type with a ``network`` attribute fixes its network kind,
# the others (DARTS cells) train in the CIFAR or the ImageNet network by the dataset.
IMAGE_GENOTYPES = (Genotype, ProxylessArch, HyperPath)

__all__ = ["AuxiliaryHead", "DATASET_NETWORKS", "check_input_size", "model_dataset", "EvalCell", "EvalNetwork", "NetworkCIFAR", "NetworkImageNet",
           "build_network", "create_model", "network_for_spec", "drop_path", "list_models", "network_from_hparams",
           "HyperPathNetwork", "IMAGE_GENOTYPES", "ProxylessNetwork", "load_image_genotype", "network_kind_for"]


def check_input_size(kind: str, size: int) -> None:
    """Refuse input sides the network cannot take: each reduction (FactorizedReduce) halves an even map, so the CIFAR
    network needs a multiple of 4, and the ImageNet one (whose stem already divides by 8) a multiple of 32. The
    proxyless network's strided convolutions take any side."""
    multiple = {"imagenet": 32, "proxyless": 1, "hyperpath": 1}.get(kind, 4)
    if not isinstance(size, int) or size < multiple or size % multiple:
        raise DartsNasError(f"the {kind} network needs an input side that is a multiple of {multiple} (its "
                            f"reductions halve even maps), got {size}")


def load_image_genotype(spec):
    """A genotype that builds an image network (a DARTS cell pair or a ProxylessNAS architecture), from any spec."""
    g = spec if isinstance(spec, IMAGE_GENOTYPES) else load_genotype(spec)
    if not isinstance(g, IMAGE_GENOTYPES):
        hint = getattr(g, "trained_by", "")
        raise DartsNasError(f"{type(g).__name__} is not an image network's architecture (expected a DARTS cell pair"
                            f", a ProxylessArch or a HyperPath)" + (f"; it trains with {hint}" if hint else ""))
    return g


def network_kind_for(genotype, requested: str, by_dataset: str) -> str:
    """The network kind a genotype trains in: its own if its type fixes one (``requested`` must then be auto or
    that), else the one asked for or chosen by the dataset."""
    own = getattr(genotype, "network", None)
    if own is not None:
        if requested not in ("auto", own):
            raise DartsNasError(f"a {type(genotype).__name__} trains in the {own} network, not --network {requested}")
        return own
    if by_dataset not in ("cifar", "imagenet"):
        raise DartsNasError(f"the {by_dataset} network is built from a {by_dataset} architecture, not DARTS cells")
    return by_dataset


def _as_genotype(genotype) -> Genotype:
    return genotype if isinstance(genotype, Genotype) else load_genotype(genotype, Genotype)


def build_network(genotype, dataset: str = "cifar10", **kwargs) -> EvalNetwork:
    """The paper's evaluation network for `dataset` ("cifar10", "cifar100", "imagenet") built from `genotype` (a
    Genotype, a published name, a file, a run directory or paper text); keywords override C, layers, num_classes,
    auxiliary, in_channels."""
    if dataset not in DATASET_NETWORKS:
        raise DartsNasError(f"no evaluation network for dataset {dataset!r} (known: {', '.join(DATASET_NETWORKS)})")
    genotype = load_image_genotype(genotype)
    if isinstance(genotype, HyperPath):  # the path fixes widths and depth
        return HyperPathNetwork(genotype, num_classes=DATASET_NETWORKS[dataset][1]["num_classes"],
                                **{k: v for k, v in kwargs.items() if k in ("num_classes", "in_channels", "head")})
    if isinstance(genotype, ProxylessArch):  # one network whatever the dataset: stem stride 2 on ImageNet only
        defaults = dict(C=40, layers=21, num_classes=DATASET_NETWORKS[dataset][1]["num_classes"],
                        stem_stride=2 if dataset == "imagenet" else 1)
        return ProxylessNetwork(genotype, **{**defaults, **kwargs})
    cls, defaults = DATASET_NETWORKS[dataset]
    args = {**defaults, **kwargs}
    for key in ("C", "layers", "num_classes"):
        if not isinstance(args[key], int) or args[key] < 1:
            raise DartsNasError(f"{key} must be a positive integer, got {args[key]!r}")
    if args["layers"] < 3:
        raise DartsNasError(f"layers must be at least 3 (two of them are reduction cells), got {args['layers']}")
    if cls is NetworkImageNet and args["C"] % 2:
        raise DartsNasError(f"the ImageNet stem halves C: C must be even, got {args['C']}")
    return cls(_as_genotype(genotype), **args)


def _model_names() -> dict[str, tuple[str, str]]:
    return {f"{g.lower()}_{d}": (g, d) for g in (*PUBLISHED, *MOBILE_PUBLISHED) for d in DATASET_NETWORKS}


def model_dataset(name: str) -> str | None:
    """The dataset of a zoo model name ('darts_v2_cifar100' -> 'cifar100'), None if it is not one."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    found = _model_names().get(key)
    return found[1] if found else None


def list_models() -> list[str]:
    """Names `create_model` knows: every published genotype on every dataset's network."""
    return sorted(_model_names())


def create_model(name: str, **kwargs) -> EvalNetwork:
    """A zoo model by name, e.g. ``create_model("darts_v2_cifar10")`` (3.3M parameters, the paper's CIFAR-10
    network) or ``create_model("darts_v2_imagenet", auxiliary=False)``. Weights are freshly initialized."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    names = _model_names()
    if key not in names:
        raise DartsNasError(f"unknown model {name!r}; known: {', '.join(sorted(names))}")
    genotype, dataset = names[key]
    return build_network(MOBILE_PUBLISHED.get(genotype) or get_genotype(genotype), dataset, **kwargs)


def network_for_spec(spec: str, dataset: str | None = None, channels=None, layers=None, num_classes=None):
    """(network, dataset) for `darts-nas info`: a zoo name, a training run directory (the network it trained), or
    any genotype spec in the paper's network of `dataset` (default cifar10)."""
    kwargs = {k: v for k, v in dict(C=channels, layers=layers, num_classes=num_classes).items() if v is not None}
    zoo_dataset = model_dataset(spec)
    if zoo_dataset is not None:
        if dataset is not None:
            raise DartsNasError(f"{spec} is a model name that fixes its dataset; drop --dataset")
        return create_model(spec, **kwargs), zoo_dataset
    network_file = Path(spec).expanduser() / "network.json"
    if dataset is None and not kwargs and network_file.is_file():  # a training run: the network it trained
        try:
            hparams = json.loads(network_file.read_text())["hparams"]
            trained_on = json.loads((network_file.parent / "config.json").read_text())["dataset"]
        except (OSError, ValueError, KeyError) as e:
            raise DartsNasError(f"{network_file}: cannot read the run's network ({e})") from None
        return network_from_hparams(hparams), trained_on
    dataset = dataset or "cifar10"
    return build_network(spec, dataset, **kwargs), dataset


def network_from_hparams(hparams: dict) -> EvalNetwork:
    """Rebuild a network from its ``hparams`` (what checkpoints store)."""
    try:
        h = dict(hparams)
        cls = NETWORK_KINDS[h.pop("kind")]
        genotype = genotype_from_dict(h.pop("genotype"))
        return cls(genotype, **h)
    except (KeyError, TypeError) as e:
        raise DartsNasError(f"cannot rebuild the network from its recorded settings ({type(e).__name__}: {e})") from None
