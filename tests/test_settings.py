"""The search's settings are assembled from the plug-ins: a method's settings live in its own module, and
registering it is all it takes for its flag, its default, its config.json key and its checks to exist."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass, fields

import pytest

from darts_nas.config import (SearchConfig, SearchCore, add_config_arguments, assemble_search_config,
                              declared_settings, overrides_from_args)
from darts_nas.errors import DartsNasError
from darts_nas.spaces.relaxation import RELAXATIONS, Relaxation, softmax
from darts_nas.settings import SettingsGroup, setting
from darts_nas.strategies import STRATEGIES


@dataclass
class ToySettings(SettingsGroup):
    POSITIVE = ("toy_steps",)

    toy_weight: float = setting(0.5, "toy strategy: the weight of its one term")
    toy_steps: int = setting(3, "toy strategy: its steps")

    @classmethod
    def problems(cls, config) -> list[str]:
        return ["--toy-weight cannot be negative"] if config.toy_weight < 0 else []


class ToyStrategy:
    """A strategy defined in the test only: its settings and its checks, nothing else that validate reads."""

    settings_groups = (ToySettings,)

    @staticmethod
    def config_problems(config, relaxation) -> list[str]:
        return []

    @staticmethod
    def models_sgd_step(config) -> bool:
        return True


@dataclass
class ToyRelaxationSettings(SettingsGroup):
    toy_sharpness: float = setting(1.0, "toy relaxation: its sharpness")


def _flags(cls) -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    return {a.dest: a for a in parser._actions}


def test_a_registered_strategy_brings_its_flags_defaults_and_checks(monkeypatch):
    monkeypatch.setitem(STRATEGIES, "toy", ToyStrategy)
    cls = assemble_search_config()
    assert ToySettings in cls.GROUPS and "toy_weight" not in {f.name for f in fields(SearchConfig)}
    flags = _flags(cls)
    assert "--toy-weight" in flags["toy_weight"].option_strings and "(default 0.5)" in flags["toy_weight"].help
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    assert overrides_from_args(parser.parse_args(["--toy-weight", "2"]), cls) == {"toy_weight": 2.0}
    config = cls(strategy="toy")
    assert config.toy_weight == 0.5 and config.tau_max == 10.0 and config.validate() is config
    assert cls.from_dict(cls(toy_weight=2.0).to_dict()).toy_weight == 2.0  # config.json round trip
    with pytest.raises(DartsNasError, match="--toy-weight cannot be negative"):
        cls(toy_weight=-1.0).validate()
    with pytest.raises(DartsNasError, match="--toy-steps must be positive"):
        cls(toy_steps=0).validate()
    # validate asks the strategy whether the weights' optimizer must be SGD
    with pytest.raises(DartsNasError, match="--weight-optimizer adam goes with"):
        cls(strategy="toy", weight_optimizer="adam").validate()


def test_the_registry_restored_the_settings_are_todays():
    assert "toy_weight" not in {f.name for f in fields(assemble_search_config())}
    assert [f.name for f in fields(assemble_search_config())] == [f.name for f in fields(SearchConfig)]


def test_a_registered_relaxation_brings_its_settings(monkeypatch):
    monkeypatch.setitem(RELAXATIONS, "toy-relax", Relaxation("toy-relax", softmax,
                                                             settings_groups=(ToyRelaxationSettings,)))
    cls = assemble_search_config()
    assert "--toy-sharpness" in _flags(cls)["toy_sharpness"].option_strings
    assert cls(relaxation="toy-relax").toy_sharpness == 1.0


def test_every_setting_has_one_home():
    @dataclass
    class Again(SettingsGroup):
        tau_max: float = setting(1.0, "a second home for the Gumbel temperature")

    with pytest.raises(DartsNasError, match="tau_max is declared by both GumbelSettings and Again"):
        assemble_search_config([*declared_settings(), Again])
    names = [f.name for f in fields(SearchConfig)]
    assert len(names) == len(set(names)) == len(fields(SearchCore)) + sum(len(fields(g)) for g in SearchConfig.GROUPS)
    assert len(fields(SearchCore)) <= 40


def test_the_core_names_no_plug_in():
    """SearchCore's checks ask the registries; they never name a strategy, relaxation, penalty or schedule."""
    source = "".join(inspect.getsource(getattr(SearchCore, m)) for m in ("validate", "core_problems",
                                                                         "plugin_problems"))
    for name in ('"bilevel"', '"implicit"', '"single-level"', "order ==", '"gumbel"', '"hard-gumbel"',
                 '"proximity"', '"admm-prime"', '"fisher"', '"every"'):
        assert name not in source, name
