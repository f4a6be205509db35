"""Discrete architectures (genotypes): one type per search space, one code-free text parser, the published cells,
and one loader for names, files, run directories and pasted text.

- :class:`Genotype` (:mod:`.cnn`): the DARTS CNN cell pair, ``Genotype(normal=..., reduce=...)``, and its
  sharpDARTS form :class:`SharpGenotype` (the same cells over sharpDARTS' ops);
- :class:`RecurrentGenotype` (:mod:`.rnn`): the DARTS recurrent cell, ``Genotype(recurrent=..., concat=...)``;
- :class:`NB201Arch` (:mod:`.nb201`): a NAS-Bench-201 cell, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``;
- :class:`ProxylessArch` (:mod:`.mobile`): the 21 layer ops of the ProxylessNAS / MobileNetV2 space;
- :class:`HyperPath` (:mod:`.hyper`): the path sharpDARTS' HyperCuboid grid search extracts;
- :class:`RLCell` (:mod:`.rl`): the single-input cell of RL-DARTS' agent encoders;
- :class:`TransformerArch` (:mod:`.transformer`): the op of each residual function of a reversible Transformer.

Each type names its ``space``, reads and writes its text and JSON forms (``to_text``/``from_text``,
``to_dict``/``from_dict``) and loads a spec (``Type.load(spec)``). A new space's genotype type is one more module
here and one entry in :data:`GENOTYPE_TYPES`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DartsNasError, registry_lookup
from ..fileio import atomic_write_text
from .cnn import (CNN_OPS, DARTS, DARTS_V1, DARTS_V2, PARAMETER_FREE, PC_DARTS, PDARTS, PRIMITIVES, PUBLISHED,
                  AmoebaNet, Genotype, NASNet, SharpGenotype, derive_cell, derive_genotype, get_genotype,
                  load_cnn_genotype, parse_genotype)
from .hyper import HYPER_OPS, HyperPath, load_hyper_path
from .mobile import MOBILE_PRIMITIVES, MOBILE_PUBLISHED, ProxylessArch, load_proxyless_arch
from .nb201 import NB201_EDGES, NB201_PRIMITIVES, NB201Arch, load_nb201_arch
from .rl import RL_OP_SETS, RLCell, derive_rl_cell, load_rl_cell
from .rnn import (RECURRENT_PUBLISHED, RNN_OPS, RNN_PRIMITIVES, RecurrentGenotype, derive_recurrent,
                  load_recurrent_genotype)
from .transformer import (OP_BANKS, TransformerArch, derive_transformer, load_transformer_arch, op_bank)
from .text import existing_path, literal_fields, spec_string

# The genotype type of each space, by the "space" key of the JSON form (a CNN genotype's JSON has none).
GENOTYPE_TYPES: dict[str, type] = {"darts-cnn": Genotype, "darts-rnn": RecurrentGenotype, "nb201": NB201Arch,
                                   "proxyless": ProxylessArch, "sharp-darts": SharpGenotype,
                                   "hypercuboid": HyperPath, "rl-darts": RLCell,
                                   "rev-transformer": TransformerArch}


def genotype_type(space: str) -> type:
    return registry_lookup(GENOTYPE_TYPES, space, "genotype space")


def genotype_from_dict(d) -> object:
    """The JSON form of any genotype type (its "space" key says which; none means a CNN genotype)."""
    space = d.get("space", "darts-cnn") if isinstance(d, dict) else "darts-cnn"
    return genotype_type(space).from_dict(d)


def _kind_of(s: str) -> type:
    """Which type a spec names, without loading it: a published name, the JSON of a file or run directory, or
    the shape of pasted text. CNN names win a clash (DARTS_V2 names both cells; a recurrent one is asked for with
    ``kind=RecurrentGenotype``)."""
    key = s.lower().replace("-", "_")
    if any(key == name.lower() for name in PUBLISHED):
        return Genotype
    if any(key == name.lower() for name in RECURRENT_PUBLISHED):
        return RecurrentGenotype
    if any(key == name.lower() for name in MOBILE_PUBLISHED):
        return ProxylessArch
    path = None if "(" in s else existing_path(s)
    if path is not None:
        target = path / "genotype.json" if path.is_dir() else path
        if target.is_file() and (target.suffix.lower() == ".json" or path.is_dir()):
            try:
                data = json.loads(target.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError, ValueError):
                return Genotype  # its own loader says what is wrong with the file
            return GENOTYPE_TYPES.get(data.get("space", "darts-cnn"), Genotype) if isinstance(data, dict) else Genotype
        return Genotype
    if "recurrent" in s:
        return RecurrentGenotype
    if "ProxylessArch" in s:
        return ProxylessArch
    if "HyperPath" in s:
        return HyperPath
    if "RLCell" in s:
        return RLCell
    if "TransformerArch" in s:
        return TransformerArch
    if s.startswith("|") and "~" in s:
        return NB201Arch
    return Genotype


def genotype_kind(spec) -> type:
    """The genotype type a spec names, without loading it (a best guess for text that is not yet valid)."""
    s = spec_string(spec) if not isinstance(spec, tuple(GENOTYPE_TYPES.values())) else None
    return type(spec) if s is None else _kind_of(s) if s else Genotype


def load_genotype(spec, kind: type | None = None):
    """Every way a user names an architecture: a published name, a search run directory (its genotype.json, else
    genotype.txt), a genotype file (JSON or paper text), or the text itself. ``kind`` (a genotype type) insists
    on one type, with a clear error for another; without it the type is recognized."""
    if isinstance(spec, tuple(GENOTYPE_TYPES.values())):
        if kind is not None and not isinstance(spec, kind):
            raise DartsNasError(f"expected a {kind.__name__}, got a {type(spec).__name__}")
        return spec
    s = spec_string(spec)
    if kind is None:
        kind = _kind_of(s) if s else Genotype
    return kind.load(s)


def save_genotype(genotype, directory) -> None:
    """Write ``genotype.json`` (for machines) and ``genotype.txt`` (paper format, for people) into ``directory``,
    for a genotype of any type."""
    if not (hasattr(genotype, "to_dict") and hasattr(genotype, "to_text")):
        raise DartsNasError(f"save_genotype: expected a Genotype, got {type(genotype).__name__}")
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "genotype.json", json.dumps(genotype.to_dict(), indent=2) + "\n")
        atomic_write_text(d / "genotype.txt", genotype.to_text() + "\n")
    except OSError as e:
        raise DartsNasError(f"{d}: cannot write genotype ({e})") from None


__all__ = ["AmoebaNet", "CNN_OPS", "DARTS", "DARTS_V1", "DARTS_V2", "GENOTYPE_TYPES", "Genotype", "NASNet",
           "NB201Arch", "NB201_EDGES", "NB201_PRIMITIVES", "PARAMETER_FREE", "PC_DARTS", "PDARTS", "PRIMITIVES",
           "PUBLISHED", "RECURRENT_PUBLISHED", "RNN_OPS", "RNN_PRIMITIVES", "RecurrentGenotype", "SharpGenotype", "derive_cell",
           "derive_genotype", "derive_recurrent", "genotype_from_dict", "genotype_type", "get_genotype",
           "literal_fields", "load_cnn_genotype", "load_genotype", "load_nb201_arch", "load_recurrent_genotype",
           "parse_genotype", "save_genotype", "MOBILE_PRIMITIVES", "MOBILE_PUBLISHED", "ProxylessArch",
           "load_proxyless_arch", "HYPER_OPS", "HyperPath", "load_hyper_path", "RL_OP_SETS", "RLCell", "derive_rl_cell",
           "load_rl_cell", "OP_BANKS", "TransformerArch", "derive_transformer", "load_transformer_arch", "op_bank",
           "genotype_kind"]
