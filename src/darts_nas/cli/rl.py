"""rl search|train|evaluate: RL-DARTS runs and the evaluation of their agents."""

from __future__ import annotations

import json

from .common import run_epochs, say


def _cmd_rl_run(args) -> int:
    from ..rl.config import RL_PRESETS, RLConfig, rl_config
    from ..run.rl import resume_rl, start_rl

    command = f"rl {args.rl_command}"

    def make(name, config_file, **overrides):
        return rl_config(name, config_file, command, **overrides)

    def start(config, out):
        return start_rl(config, out, say, command)

    done, status = run_epochs(args, command, RLConfig, make, RL_PRESETS, start, resume_rl, unit="iteration")
    if done is None:
        return status
    _, result = done
    if result.genotype is not None:
        print(f"\ncell: {result.genotype.to_text()}")
    print(f"outputs in {result.run_dir}/: results.json, metrics.jsonl, checkpoint.pt, config.json"
          + (", genotype.txt, genotype.json" if result.genotype is not None else "")
          + (", alphas.json" if args.rl_command == "search" else ""))
    return 0


def _cmd_rl_evaluate(args) -> int:
    from ..run.rl import evaluate_rl

    r = evaluate_rl(args.run, episodes=args.episodes, device=args.device)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{args.run} ({r['algo']}, {r['encoder']} encoder, {r['frames']:,} frames) on {r['env']}:")
    for lv in ("train", "test"):
        e = r[lv]
        print(f"  {lv} levels: mean return {e['mean']:.2f} +- {e['std']:.2f} over {e['episodes']} episodes"
              + (f" ({e['unfinished']} not finished)" if e["unfinished"] else ""))
    return 0


def register(sub) -> None:
    """The rl command and its actions."""
    from ..config import add_config_arguments
    from ..rl.config import RL_PRESETS, RLConfig

    p = sub.add_parser("rl", help="RL-DARTS: the supernet as an RL agent's image encoder (Procgen)",
                       description="RL-DARTS: search a cell with the supernet as the encoder of a PPO or DQN agent, "
                       "train a fixed-cell or IMPALA-CNN agent, evaluate an agent on training and test levels.")
    rl = p.add_subparsers(dest="rl_command", metavar="WHAT")
    rl.required = True
    for what, helptext in (("search", "train the supernet agent (weights and alphas from the RL loss)"),
                           ("train", "train a fixed-cell agent (--genotype) or the IMPALA-CNN baseline")):
        q = rl.add_parser(what, help=helptext, description=helptext + ". A preset sets the authors' values; "
                          "every flag overrides one.")
        q.add_argument("--preset", choices=list(RL_PRESETS), help="settings to start from")
        q.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
        q.add_argument("--config", metavar="FILE", help="start from a run's config.json (flags still override)")
        q.add_argument("--stop-after", type=int, metavar="N", help="stop after N iterations of this invocation")
        add_config_arguments(q, RLConfig)
        q.set_defaults(func=_cmd_rl_run)
    q = rl.add_parser("evaluate", help="mean return of a run's agent on training and test levels")
    q.add_argument("run", metavar="RUN_DIR", help="an rl search or rl train run directory (or its checkpoint.pt)")
    q.add_argument("--episodes", type=int, help="episodes per level set (default: the run's --eval-episodes)")
    q.add_argument("--device", default="auto")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=_cmd_rl_evaluate)
