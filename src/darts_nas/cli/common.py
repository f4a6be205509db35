"""What the run commands share: a run started from a preset and flags or resumed, and rank 0 speaking."""

from __future__ import annotations

import sys
import time

from .. import distributed
from ..errors import DartsNasError

say = distributed.main_only(print)  # under torchrun, rank 0 speaks for all


def scale_lr(config) -> None:
    """--scale-lr, the linear scaling rule: --batch-size is each rank's batch, so the global batch and the
    learning rates are multiplied by the world size (recorded so; a resume does not scale again)."""
    n = distributed.world_size()
    old = (config.batch_size, config.lr)
    config.batch_size, config.lr, config.lr_min = config.batch_size * n, config.lr * n, config.lr_min * n
    say(f"--scale-lr: {n} ranks x batch {old[0]} = global batch {config.batch_size}; lr {old[1]:g} x {n} = "
        f"{config.lr:g}")


def run_epochs(args, command: str, settings_cls, make_config, presets: dict, start, resume, unit: str = "epoch"):
    """Start a run from a preset and flags, or resume one; run it. Returns the finished run and its result, or
    None (interrupted or stopped early, with the message already printed, or a rank other than 0) and the exit
    status. `unit` names what the run counts (epochs; an RL run's iterations)."""
    from ..config import overrides_from_args
    from ..run.common import resolve_device

    if args.stop_after is not None and args.stop_after < 1:
        raise DartsNasError(f"--stop-after must be a positive number of {unit}s, got {args.stop_after}")
    overrides = overrides_from_args(args, settings_cls)
    scaled = getattr(args, "scale_lr", False)
    if args.resume:
        if args.preset or args.config or scaled:
            raise DartsNasError("--resume continues a run with its recorded settings; drop --preset, --config and "
                                "--scale-lr")
        run = resume(args.resume, **overrides)
        say(f"resuming {run.run_dir} after {unit} {run.epoch}/{run.config.epochs}")
    else:
        config = make_config(args.preset, args.config, **overrides)
        if distributed.launched():  # join now: the ranks agree on the run directory's name
            distributed.setup(resolve_device(config.device))
        if not config.out:
            config.out = distributed.from_main(f"runs/{args.preset or command.replace(' ', '-')}-"
                                               f"{time.strftime('%Y%m%d-%H%M%S')}")
        if args.preset:
            say(f"preset {args.preset}: {presets[args.preset].note}")
        if args.config:
            say(f"settings from {args.config}")
        if scaled:
            scale_lr(config)
        run = start(config, config.out)
    try:
        result = run.run(stop_after=args.stop_after)
    except KeyboardInterrupt:
        if not distributed.is_main():
            return None, 130
        if run.epoch == 0:
            print(f"\ninterrupted before the first {unit} finished: there is no checkpoint to resume ({run.run_dir})",
                  file=sys.stderr)
        else:
            print(f"\ninterrupted after {unit} {run.epoch}; continue with: darts-nas {command} --resume "
                  f"{run.run_dir}", file=sys.stderr)
        return None, 130
    if not distributed.is_main():
        return None, 0
    if not result.finished:
        print(f"stopped after {unit} {result.epochs_done}/{run.config.epochs}; continue with: "
              f"darts-nas {command} --resume {result.run_dir}")
        return None, 0
    return (run, result), 0
