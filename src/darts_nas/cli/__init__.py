"""The `darts-nas` command.

    darts-nas search --preset darts-cifar10 --data ./data      run a search (every setting overridable)
    darts-nas search --resume runs/darts-cifar10-...           continue an interrupted search
    darts-nas derive RUN_DIR|CHECKPOINT                        the derived cell of a run
    darts-nas genotypes [NAME]                                 published genotypes
    darts-nas train --genotype DARTS_V2 --preset darts-cifar10-eval --data ./data   train a cell from scratch
    darts-nas train --resume runs/darts-cifar10-eval-...       continue an interrupted training run
    darts-nas evaluate runs/darts-cifar10-eval-.../best.pt     test accuracy of a trained network
    darts-nas info DARTS_V2 [--dataset imagenet]               parameters and multiply-adds of a network
    darts-nas models                                           the model zoo (create_model names)
    darts-nas presets                                          the presets and their values
    darts-nas bench search|train --device cpu                  time the search step / the training step
    darts-nas search --preset darts-ptb --data ../data/ptb      a recurrent cell on Penn Treebank
    darts-nas train --preset darts-ptb-eval --data ../data/ptb  its language model (valid/test perplexity)
    darts-nas bench rnn-search|lm-train --device cpu           time the recurrent search / LM training step
    darts-nas bench signals --preset darts-cifar10             the share of a search its collapse signal adds
    darts-nas bench hypergradient --run RUN_DIR                a recurrent search's exact vs authors' hypergradients
    darts-nas bench reversible --depths 1,2,4,8                reversible Transformer: memory vs depth
    darts-nas search --config runs/.../config.json --seed 3    repeat a run (flags still override)
    torchrun --nproc_per_node 4 -m darts_nas search ...         the same search on 4 GPUs (or CPU processes)
    darts-nas bench search|train --nproc 2                     per-step time and scaling over 2 processes
    darts-nas plot RUN_DIR | GENOTYPE                          cell diagram, op weights, signals, curves (PNG, SVG)
    darts-nas report RUN_DIR...                                one self-contained HTML page of runs
    darts-nas compare RUN_DIR... [--plot FILE]                 runs side by side, mean +- std per method
    darts-nas export RUN_DIR/best.pt --format onnx|torchscript   a trained network for other runtimes
    darts-nas rl search --preset rl-darts-ppo-procgen          RL-DARTS: the supernet as a PPO agent's encoder
    darts-nas rl train --genotype RUN_DIR --env procgen:coinrun   the derived cell's agent (or --encoder impala)
    darts-nas rl evaluate RUN_DIR                              mean return on training and test levels

Expected errors (bad input, missing data, a broken checkpoint) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .. import distributed
from ..errors import DartsNasError
from . import bench, cells, latency_table, outputs, presets, rl, runs

# The command groups, in the order --help lists their commands.
COMMAND_MODULES = (runs, cells, outputs, latency_table, presets, rl, bench)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error printed once under torchrun (by rank 0; the others exit with it silently)."""

    def error(self, message):
        if not distributed.is_main():
            sys.exit(2)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="darts-nas", description="Differentiable architecture search (DARTS).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    clean = False
    try:
        status = args.func(args)
        clean = True
        return status
    except DartsNasError as e:
        if distributed.is_main():  # every rank stops with the same error; one line says it
            print(f"darts-nas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if distributed.is_main():
            print("\ninterrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if not distributed.lost_peer(e):
            raise
        distributed.report_lost_rank()
        return 1
    finally:
        distributed.shutdown(clean)

