"""presets: the named settings of searches, training runs and RL runs."""

from __future__ import annotations


def _cmd_presets(args) -> int:
    from ..config import PRESETS, TRAIN_PRESETS, preset_config, train_preset_config

    from ..rl.config import RL_PRESETS, RLConfig

    def rl_make(name):
        return RLConfig.from_dict(RL_PRESETS[name].values)

    for title, table, make in (("search (darts-nas search --preset NAME)", PRESETS, preset_config),
                               ("training from scratch (darts-nas train --preset NAME)", TRAIN_PRESETS,
                                train_preset_config),
                               ("reinforcement learning (darts-nas rl search|train --preset NAME)", RL_PRESETS,
                                rl_make)):
        print(f"{title}:")
        for name, preset in table.items():
            print(f"  {name}: {preset.note}")
            if args.verbose:
                for k, v in make(name).to_dict().items():
                    print(f"      {k} = {v}")
    return 0


def register(sub) -> None:
    """The presets command."""
    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("-v", "--verbose", action="store_true", help="show every value")
    p.set_defaults(func=_cmd_presets)
