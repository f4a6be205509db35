"""The pieces every settings class is made of: the field helper (default, help, choices, whether only some search
spaces read it), the plain-dict round trip and generic checks (:class:`Settings`), and :class:`SettingsGroup`, the
base of the small dataclasses in which a space, strategy, relaxation, penalty or schedule declares its own settings
next to its code. The search's flat settings class (:mod:`darts_nas.config`) is assembled from them, so that this
module imports nothing of the package but its errors."""

from __future__ import annotations

import dataclasses
from dataclasses import field, fields

from .errors import DartsNasError


def setting(default, help: str, choices=None, space_setting: bool = False):
    """A setting: its default, its help, its allowed values (a tuple, or a registry read when checked, so that a
    space or strategy registered later is allowed too), and whether only some search spaces read it."""
    return field(default=default, metadata={"help": help, "choices": choices, "space_setting": space_setting})


_f = setting


def choices_of(f) -> list | None:
    c = f.metadata.get("choices")
    return list(c() if callable(c) else c) if c else None


def flag(name: str) -> str:
    """The command-line spelling of a setting's name (`--batch-size` for batch_size), without the dashes."""
    return name.replace("_", "-")


class SettingsGroup:
    """A plug-in's settings: a dataclass of fields made with :func:`setting`, the names among them that must be
    positive (POSITIVE), and :meth:`problems`, its own checks on a whole configuration (one line each)."""

    POSITIVE: tuple = ()
    # The value a setting had in effect in configurations recorded before it existed (config.json and checkpoints
    # of older runs), where that differs from its default: a resumed or repeated run then means what it meant.
    RECORDED_BEFORE: dict = {}

    @classmethod
    def problems(cls, config) -> list[str]:
        return []


class Settings:
    """What every flat settings dataclass shares: the plain-dict round trip (config.json, checkpoints) and the
    generic checks (choices, and the fields named in POSITIVE)."""

    POSITIVE = ()
    WHAT = "a"  # how messages name a config of this kind ("not a search config")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DartsNasError(f"unknown settings in config: {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_record(cls, d: dict):
        """A configuration as a run recorded it (config.json, a checkpoint): settings it predates take the value
        they had then (each group's RECORDED_BEFORE), the others their defaults."""
        before = {}
        for base in cls.__mro__:
            before.update({k: v for k, v in vars(base).get("RECORDED_BEFORE", {}).items() if k not in before})
        return cls.from_dict({**before, **d})

    @classmethod
    def choices_for(cls, name: str) -> list | None:
        """The allowed values of one setting (from its registry where it has one)."""
        return choices_of(next(f for f in fields(cls) if f.name == name))

    def generic_problems(self) -> list[str]:
        problems = []
        for f in fields(self):
            choices = choices_of(f)
            if choices and getattr(self, f.name) not in choices:
                problems.append(f"--{flag(f.name)} must be one of {', '.join(map(str, choices))}")
        problems += [f"--{flag(n)} must be positive" for n in self.POSITIVE if getattr(self, n) <= 0]
        if getattr(self, "layers", 3) < 3:
            problems.append("--layers must be at least 3 (two of them are reduction cells)")
        return problems


def declared_groups(owners) -> list[type]:
    """The settings groups that `owners` (registered classes or objects) declare in their ``settings_groups``
    tuple, each once, in order; a class also brings those its bases declare (a subclass space reads its
    parent's). An owner that is a settings group itself stands for itself."""
    groups: list[type] = []
    for owner in owners:
        if isinstance(owner, type) and issubclass(owner, SettingsGroup):
            groups += [owner] if owner not in groups else []
            continue
        chain = reversed(owner.__mro__) if isinstance(owner, type) else (owner,)
        for part in chain:
            declared = vars(part).get("settings_groups", ()) if isinstance(part, type) else \
                getattr(part, "settings_groups", ())
            groups += [g for g in declared if g not in groups]
    return groups
