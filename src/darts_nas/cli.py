"""The `darts-nas` command.

    darts-nas search --preset darts-cifar10 --data ./data      run a search (every setting overridable)
    darts-nas search --resume runs/darts-cifar10-...           continue an interrupted search
    darts-nas derive RUN_DIR|CHECKPOINT                        the derived cell of a run
    darts-nas genotypes [NAME]                                 published genotypes
    darts-nas presets                                          the presets and their values
    darts-nas bench search --device cpu                        time the search step

Expected errors (bad input, missing data, a broken checkpoint) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import DartsNasError


def _cmd_search(args) -> int:
    from .config import PRESET_NOTES, overrides_from_args, preset_config
    from .run.search import resume_search, start_search

    overrides = overrides_from_args(args)
    if args.resume:
        if args.preset:
            raise DartsNasError("--resume continues a run with its recorded settings; drop --preset")
        run = resume_search(args.resume, **overrides)
        print(f"resuming {run.run_dir} after epoch {run.epoch}/{run.config.epochs}")
    else:
        config = preset_config(args.preset, **overrides)
        if not config.out:
            config.out = f"runs/{args.preset or 'search'}-{time.strftime('%Y%m%d-%H%M%S')}"
        if args.preset:
            print(f"preset {args.preset}: {PRESET_NOTES[args.preset]}")
        run = start_search(config, config.out)
    try:
        result = run.run(stop_after=args.stop_after)
    except KeyboardInterrupt:
        print(f"\ninterrupted after epoch {run.epoch}; continue with: darts-nas search --resume {run.run_dir}",
              file=sys.stderr)
        return 130
    if not result.finished:
        print(f"stopped after epoch {result.epochs_done}/{run.config.epochs}; continue with: "
              f"darts-nas search --resume {result.run_dir}")
        return 0
    d = result.run_dir
    print(f"\nderived cell ({run.config.dataset}, {result.epochs_done} epochs):\n{result.genotype.to_text()}")
    print(f"outputs in {d}/: genotype.txt, genotype.json, alphas.json, metrics.jsonl, checkpoint.pt, config.json")
    return 0


def _cmd_derive(args) -> int:
    from .run.log import format_weight_table
    from .run.search import search_model_from_checkpoint

    model, state = search_model_from_checkpoint(args.run)
    genotype = model.genotype()
    if args.json:
        print(json.dumps(genotype.to_dict()))
    else:
        print(f"# epoch {state['epoch']}/{state['config']['epochs']} of {args.run}")
        print(genotype.to_text())
    if args.alphas:
        for cell, weights in model.derivation_weights().items():
            print(f"\n{cell} cell, softmax(alpha):\n{format_weight_table(model.primitives, weights, model.steps)}")
    return 0


def _cmd_genotypes(args) -> int:
    from .genotype import PUBLISHED, get_genotype

    if args.name is None:
        width = max(map(len, PUBLISHED))
        for name, g in PUBLISHED.items():
            print(f"{name:<{width}}  {g.to_text()}")
        return 0
    g = get_genotype(args.name)
    print(json.dumps(g.to_dict()) if args.json else g.to_text())
    return 0


def _cmd_presets(args) -> int:
    from .config import PRESET_NOTES, PRESETS, preset_config

    for name in PRESETS:
        print(f"{name}: {PRESET_NOTES[name]}")
        if args.verbose:
            for k, v in preset_config(name).to_dict().items():
                print(f"    {k} = {v}")
    return 0


def _cmd_bench(args) -> int:
    from .bench import bench_search, format_table, machine_description

    results = bench_search(device=args.device, batch_size=args.batch_size, channels=args.channels,
                           layers=args.layers, orders=args.order, hvps=args.hvp, steps=args.steps,
                           warmup=args.warmup, channels_last=args.channels_last)
    print(f"\n{machine_description(args.device)}, {time.strftime('%Y-%m-%d')}")
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS, add_config_arguments

    parser = argparse.ArgumentParser(prog="darts-nas", description="Differentiable architecture search (DARTS).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("search", help="run a DARTS search", description="Run a DARTS search. A preset sets the "
                       "paper's values; every flag below overrides one of them.")
    p.add_argument("--preset", choices=list(PRESETS), help="paper settings to start from")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search in RUN_DIR from its last checkpoint")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this invocation (resume later)")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("derive", help="the derived cell of a search run or checkpoint")
    p.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--json", action="store_true", help="print the JSON form")
    p.add_argument("--alphas", action="store_true", help="also print softmax(alpha) per edge")
    p.set_defaults(func=_cmd_derive)

    p = sub.add_parser("genotypes", help="list the published genotypes, or show one")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true", help="print the JSON form")
    p.set_defaults(func=_cmd_genotypes)

    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("-v", "--verbose", action="store_true", help="show every value")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("bench", help="benchmarks (median s/step, images/s, peak memory)")
    p.add_argument("what", choices=["search"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--order", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    p.add_argument("--hvp", nargs="+", default=["finite-difference"], choices=["finite-difference", "exact"])
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="NHWC layout (default on, as in search)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except DartsNasError as e:
        print(f"darts-nas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
