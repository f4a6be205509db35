"""bench: time a step, or compare estimators and hypergradients, and print one table (optionally JSON too)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import DartsNasError

# The image presets `bench signals` times when --preset is not given.
SIGNAL_PRESETS = ["darts-cifar10", "darts-cifar10-2nd", "pc-darts-cifar10", "darts-nb201", "single-darts-nb201",
                  "gdas-nb201", "demo"]


def _reversible(args):
    from ..bench import bench_reversible, format_reversible_table

    try:
        depths = tuple(int(d) for d in args.depths.split(",")) if args.depths != "16,32,32" else (1, 2, 4, 8)
    except ValueError:
        raise DartsNasError(f"--depths {args.depths!r}: expected block counts like 1,2,4,8") from None
    results = bench_reversible(device=args.device, depths=depths, splits=args.splits,
                               d_model=args.d_model, batch_size=args.batch_size or 32, length=args.bptt,
                               vocab=args.vocab, bank=args.op_bank, steps=args.steps, warmup=args.warmup)
    return results, format_reversible_table(results)


def _rl(args):
    from ..bench import bench_rl, format_rl_table

    try:
        depths = tuple(int(d) for d in args.depths.split(","))
    except ValueError:
        raise DartsNasError(f"--depths {args.depths!r}: expected channel counts like 16,32,32") from None
    results = bench_rl(device=args.device, depths=depths, act_batch=args.act_batch,
                       minibatch=args.batch_size or 256, genotype=args.rl_genotype, steps=args.steps,
                       warmup=args.warmup)
    return results, format_rl_table(results)


def _hypergradient(args):
    from ..bench import bench_hypergradient, format_hypergradient_table

    if not args.run:
        raise DartsNasError("bench hypergradient compares the recurrent hypergradients at a search's "
                            "checkpoint: give --run RUN_DIR (a darts-rnn search) and, if it moved, --data")
    results = bench_hypergradient(args.run, args.data or "", args.batches)
    return results, format_hypergradient_table(results)


def _estimators(args):
    from ..bench import bench_estimators, format_estimators_table

    results = bench_estimators(samples=args.samples)
    return results, format_estimators_table(results)


def _signals(args):
    from ..bench import bench_signals, format_signals_table

    results = bench_signals(args.preset or SIGNAL_PRESETS, device=args.device, steps=args.steps,
                            warmup=args.warmup, batch_size=args.batch_size or 0)
    return results, format_signals_table(results)


def _rnn(args):
    from ..bench import bench_rnn, format_rnn_table

    search = args.what == "rnn-search"
    common = dict(batch_size=args.batch_size or (256 if search else 64), bptt=args.bptt,
                  units=args.units or (300 if search else 850), vocab=args.vocab, steps=args.steps,
                  warmup=args.warmup)
    if min(common["batch_size"], common["bptt"], common["units"], common["vocab"]) < 1:
        raise DartsNasError("--batch-size, --bptt, --units and --vocab must be positive")
    results = bench_rnn(args.what, device=args.device, orders=args.order, hvps=args.hvp, **common) if search \
        else bench_rnn(args.what, device=args.device, genotype=args.genotype, **common)
    return results, format_rnn_table(results)


def _train(args):
    from ..bench import bench_train, format_scaling_table, format_train_table

    if args.fuse_ops or args.checkpoint_cells or args.partial_channels != 1 or args.edge_normalization:
        raise DartsNasError("--fuse-ops, --checkpoint-cells, --partial-channels and --edge-normalization are "
                            "search settings")
    results = bench_train(device=args.device, batch_size=args.batch_size or 96, channels=args.channels or 36,
                          layers=args.layers or 20, genotype=args.genotype, precisions=args.precision,
                          channels_last=args.channels_last, steps=args.steps, warmup=args.warmup,
                          cuda_graphs=args.cuda_graphs, check=args.check, nproc=args.nproc)
    return results, format_scaling_table(results) if args.nproc > 1 else format_train_table(results)


def _search(args):
    from ..bench import bench_search, format_scaling_table, format_table

    results = []
    for precision in args.precision:
        results += bench_search(device=args.device, batch_size=args.batch_size or 64,
                                channels=args.channels or 16, layers=args.layers or 8, orders=args.order,
                                hvps=args.hvp, steps=args.steps, warmup=args.warmup,
                                channels_last=args.channels_last, precision=precision, fuse_ops=args.fuse_ops,
                                checkpoint_cells=args.checkpoint_cells, cuda_graphs=args.cuda_graphs,
                                partial_channels=args.partial_channels,
                                edge_normalization=args.edge_normalization, check=args.check,
                                strategy=args.strategy, nproc=args.nproc)
    return results, format_scaling_table(results) if args.nproc > 1 else format_table(results)


# What `darts-nas bench WHAT` runs: each returns the results (for --json) and the table to print.
BENCHMARKS = {"search": _search, "train": _train, "rnn-search": _rnn, "lm-train": _rnn, "signals": _signals,
              "estimators": _estimators, "hypergradient": _hypergradient, "rl": _rl, "reversible": _reversible}


def _cmd_bench(args) -> int:
    from ..bench import machine_description

    if args.steps < 1 or args.warmup < 0:
        raise DartsNasError("--steps must be at least 1 and --warmup at least 0")
    sizes = ("batch_size", "channels", "layers", "units", "bptt", "vocab", "splits", "d_model", "act_batch",
             "batches", "samples")
    for name in sizes:
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            raise DartsNasError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.nproc < 1 or args.nproc > 1 and args.what not in ("search", "train"):
        raise DartsNasError("--nproc N (N >= 1) times the search or train step over N ranks")
    if args.nproc > 1 and args.cuda_graphs:
        raise DartsNasError("--cuda-graphs is not supported in a distributed run yet; drop it with --nproc")
    results, table = BENCHMARKS[args.what](args)
    print(f"\n{machine_description(args.device)}, {time.strftime('%Y-%m-%d')}")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    """The bench command: one parser for every benchmark (each reads the flags it names)."""
    from ..precision import PRECISIONS
    from ..strategies import HVP_METHODS, STRATEGIES

    p = sub.add_parser("bench", help="benchmarks (median s/step, images/s, peak memory)")
    p.add_argument("what", choices=["search", "train", "rnn-search", "lm-train", "signals", "estimators",
                                    "hypergradient", "rl", "reversible"],
                   help="search: the search step; train: the evaluation network's training step; rnn-search: the "
                   "recurrent search step; lm-train: the language model's training step; signals: the share of a "
                   "preset's search that its Hessian collapse signal adds; estimators: bias and variance of the "
                   "architecture-gradient estimators (REINFORCE, UNAS, relaxed) against an enumerated gradient; hypergradient: "
                   "the recurrent second-order gradient exact vs the DARTS authors' two ways at a search's checkpoint; rl: the RL "
                   "encoders' milliseconds per frame acting and learning (PPO) on 64x64 frames; reversible: the reversible "
                   "Transformer's saved-tensor bytes, peak memory and time against depth, reconstructing vs plain "
                   "backward")
    p.add_argument("--splits", type=int, default=2, help="reversible: parts of the hidden state")
    p.add_argument("--d-model", type=int, default=256, help="reversible: width of each part")
    p.add_argument("--op-bank", default="evolved", choices=["evolved", "small"], help="reversible: candidate ops")
    p.add_argument("--depths", default="16,32,32", help="rl: the encoders' stage channels; reversible: the block "
                   "counts (default 1,2,4,8)")
    p.add_argument("--act-batch", type=int, default=64, help="rl: environments per acting forward pass")
    p.add_argument("--rl-genotype", metavar="CELL", help="rl: the fixed cell to time (default: all 3x3 convs)")
    p.add_argument("--run", metavar="RUN_DIR", help="hypergradient: a darts-rnn search run (its checkpoint)")
    p.add_argument("--data", metavar="DIR", help="hypergradient: the corpus directory, if not the run's")
    p.add_argument("--batches", type=int, default=5, help="hypergradient: windows compared")
    p.add_argument("--samples", type=int, default=20000, help="estimators: samples per estimate")
    p.add_argument("--preset", nargs="+", help="signals: the presets to time (default: the image presets)")
    p.add_argument("--units", type=int, help="rnn-search / lm-train: hidden size (default 300 / 850)")
    p.add_argument("--bptt", type=int, default=35, help="rnn-search / lm-train: window length; reversible: "
                   "sequence length")
    p.add_argument("--vocab", type=int, default=10000, help="rnn-search / lm-train: vocabulary size (PTB: 10000)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, help="default 64 (search) / 96 (train)")
    p.add_argument("--channels", type=int, help="default 16 (search) / 36 (train)")
    p.add_argument("--layers", type=int, help="default 8 (search) / 20 (train)")
    p.add_argument("--order", type=int, nargs="+", default=[1, 2], choices=[1, 2], help="search only")
    p.add_argument("--hvp", nargs="+", default=["finite-difference"], choices=list(HVP_METHODS),
                   help="search only")
    p.add_argument("--strategy", default="bilevel", choices=list(STRATEGIES),
                   help="search only: the strategy whose step is timed (--order and --hvp apply to bilevel)")
    p.add_argument("--genotype", default="DARTS_V2", help="train only")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=list(PRECISIONS),
                   help="one row per precision (bf16: autocast)")
    p.add_argument("--cuda-graphs", action="store_true", help="capture the step in a CUDA graph and replay it")
    p.add_argument("--fuse-ops", action="store_true", help="search only: batched kernels per cell state")
    p.add_argument("--checkpoint-cells", action="store_true", help="search only: recompute cell activations")
    p.add_argument("--partial-channels", type=int, default=1, metavar="K",
                   help="search only: PC-DARTS partial channels (K > 1 is another search; --check compares it with its own plain step)")
    p.add_argument("--edge-normalization", action="store_true", help="search only: PC-DARTS edge normalization")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="for each row with a speed setting, compare 4 steps with the plain fp32 eager step from the "
                   "same start (default on)")
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="search / train: the scaling over N ranks "
                   "(torchrun, gloo on CPU, NCCL on CUDA) against one process, with the same batch per rank")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="NHWC layout (default on, as in search and train runs)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_cmd_bench)
