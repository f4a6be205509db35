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
    darts-nas bench hypergradient --run RUN_DIR                a recurrent search's exact vs authors' hypergradient
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
import json
import sys
import time
from pathlib import Path

from . import distributed
from .errors import DartsNasError

say = distributed.main_only(print)  # under torchrun, rank 0 speaks for all


def _scale_lr(config) -> None:
    """--scale-lr, the linear scaling rule: --batch-size is each rank's batch, so the global batch and the
    learning rates are multiplied by the world size (recorded so; a resume does not scale again)."""
    n = distributed.world_size()
    old = (config.batch_size, config.lr)
    config.batch_size, config.lr, config.lr_min = config.batch_size * n, config.lr * n, config.lr_min * n
    say(f"--scale-lr: {n} ranks x batch {old[0]} = global batch {config.batch_size}; lr {old[1]:g} x {n} = "
        f"{config.lr:g}")


def _run_epochs(args, command: str, settings_cls, make_config, presets: dict, start, resume, unit: str = "epoch"):
    """Start a run from a preset and flags, or resume one; run it. Returns the finished run and its result, or
    None (interrupted or stopped early, with the message already printed, or a rank other than 0) and the exit
    status. `unit` names what the run counts (epochs; an RL run's iterations)."""
    from .config import overrides_from_args
    from .run.common import resolve_device

    overrides = overrides_from_args(args, settings_cls)
    scale_lr = getattr(args, "scale_lr", False)
    if args.resume:
        if args.preset or args.config or scale_lr:
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
        if scale_lr:
            _scale_lr(config)
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


def _cmd_search(args) -> int:
    from .config import PRESETS, SearchConfig, preset_config
    from .run import resume_search, start_search

    done, status = _run_epochs(args, "search", SearchConfig, preset_config, PRESETS, start_search,
                               resume_search)
    if done is None:
        return status
    run, result = done
    d = result.run_dir
    print(f"\nderived cell ({run.config.dataset}, {result.epochs_done} epochs):\n{result.genotype.to_text()}")
    print(f"outputs in {d}/: genotype.txt, genotype.json, alphas.json, metrics.jsonl, checkpoint.pt, config.json")
    return 0


def _cmd_train(args) -> int:
    from .config import TRAIN_PRESETS, TrainConfig, train_preset_config
    from .run import resume_training, start_training

    done, status = _run_epochs(args, "train", TrainConfig, train_preset_config, TRAIN_PRESETS, start_training,
                               resume_training)
    if done is None:
        return status
    _, result = done
    if getattr(result, "final", None) is not None and "test_bleu_greedy" in result.final:  # translation
        f = result.final
        print(f"\nbest model (epoch {f['epoch']} of {result.epochs_done}): test BLEU {f['test_bleu_greedy']:.2f} "
              f"greedy, {f['test_bleu_beam']:.2f} with beam {f['beam']} (valid BLEU {f['valid_bleu_greedy']:.2f})")
        print(f"outputs in {result.run_dir}/: results.json, best.pt, last.pt, checkpoint.pt, metrics.jsonl, "
              f"network.json, genotype.txt, config.json")
        return 0
    if getattr(result, "final", None) is not None:  # a language model
        f = result.final
        print(f"\nbest model (epoch {f['epoch']} of {result.epochs_done}): valid perplexity {f['valid_ppl']:.2f}, "
              f"test perplexity {f['test_ppl']:.2f}")
        print(f"outputs in {result.run_dir}/: results.json, best.pt, last.pt, checkpoint.pt, metrics.jsonl, "
              f"network.json, genotype.txt, config.json")
        return 0
    last = result.history[-1]
    print(f"\nfinal test accuracy {100 * last['test_acc']:.2f}% after {result.epochs_done} epochs"
          + (f" (best {100 * result.best['test_acc']:.2f}% at epoch {result.best['epoch']})" if result.best else ""))
    print(f"outputs in {result.run_dir}/: last.pt, best.pt, checkpoint.pt, metrics.jsonl, network.json, "
          f"genotype.txt, config.json")
    return 0


def _cmd_evaluate(args) -> int:
    from .run import evaluate_trained

    r = evaluate_trained(args.checkpoint, device=args.device, data=args.data, dataset=args.dataset,
                         batch_size=args.batch_size, genotype=args.genotype, limit=args.limit)
    if args.json:
        print(json.dumps({k: v for k, v in r.items() if k not in ("perplexity", "transformer")}))
    elif r.get("transformer") and not r.get("perplexity"):
        print(f"{args.checkpoint} (epoch {r['epoch']}, {r['params'] / 1e6:.2f}M params) on {r['dataset']}: test "
              f"BLEU {r['test_bleu_greedy']:.2f} greedy, {r['test_bleu_beam']:.2f} with beam {r['beam']}; valid "
              f"BLEU {r['valid_bleu_greedy']:.2f} greedy")
    elif r.get("perplexity"):
        print(f"{args.checkpoint} (epoch {r['epoch']}, {r['params'] / 1e6:.2f}M params) on {r['dataset']}: "
              f"valid perplexity {r['valid_ppl']:.2f} (loss {r['valid_loss']:.4f}), test perplexity "
              f"{r['test_ppl']:.2f} (loss {r['test_loss']:.4f})")
    else:
        print(f"{args.checkpoint} (epoch {r['epoch']}) on {r['images']} {r['dataset']} test images: "
              f"top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}")
    return 0


def _cmd_plot(args) -> int:
    from .plots.run import is_run_dir, write_genotype_plot, write_run_plots

    formats = tuple(dict.fromkeys(args.format))
    if is_run_dir(args.target):
        written = write_run_plots(args.target, args.out, formats, args.dot)
    else:
        written = write_genotype_plot(args.target, args.out, formats, args.dot)
    folders = sorted({str(p.parent) for p in written})
    print(f"wrote {len(written)} files in {', '.join(folders)}: {', '.join(p.name for p in written)}")
    return 0


def _cmd_report(args) -> int:
    from .plots.report import write_report

    out = write_report(args.runs, args.out)
    print(f"wrote {out} (self-contained HTML: open it in a browser)")
    return 0


def _cmd_compare(args) -> int:
    from .plots.compare import compare_runs, comparison_figure, format_comparison

    result = compare_runs(args.runs)
    print(format_comparison(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        comparison_figure(args.runs, result).savefig(args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_export(args) -> int:
    from .export import export_model

    r = export_model(args.checkpoint, args.format, args.out, steps=args.steps)
    if args.json:
        print(json.dumps(r))
        return 0
    shapes = ", ".join(f"{n} {s}" for n, s in zip(r["inputs"], r["input_shapes"]))
    print(f"wrote {r['path']} ({r['format']}): inputs {', '.join(r['inputs'])}, outputs {', '.join(r['outputs'])}")
    print(f"checked: the exported file on {shapes} gives PyTorch's outputs to {r['max_abs_diff']:.2g} (max abs)")
    if "normalization" in r:
        n = r["normalization"]
        print(f"inputs are normalized as in training: mean {n['mean']}, std {n['std']}")
    return 0


def _cmd_latency_table(args) -> int:
    import torch

    from .config import preset_config, overrides_from_args
    from .latency import build_table
    from .run.common import resolve_device
    from .run.search import build_search_model
    from .spaces import get_space

    config = preset_config(args.preset, **overrides_from_args(args)).validate()
    if get_space(config.space).data_kind != "images":
        raise DartsNasError("latency tables measure image spaces")
    if args.samples < 10 or args.repeats < 1 or args.images < 1:
        raise DartsNasError("--samples must be at least 10, --repeats and --images at least 1")
    device = resolve_device(config.device)
    classes = 100 if config.dataset == "cifar100" else 10
    torch.manual_seed(config.seed)
    model = build_search_model(config, num_classes=classes, in_channels=3).to(device)
    side = config.image_size if config.dataset == "folder" else 32
    inputs = torch.randn(args.images, 3, side, side, device=device)
    print(f"latency table: {config.space} supernet ({sum(p.numel() for p in model.weight_parameters()) / 1e6:.2f}M "
          f"weights), {args.samples} random architectures (mixed op frequencies) x median of {args.repeats} "
          f"forwards on {args.images} "
          f"images of {side}x{side}, {device}")
    if args.ridge < 0:
        raise DartsNasError("--ridge cannot be negative (0: chosen by cross-validation)")
    table = build_table(model, inputs, args.samples, args.repeats, seed=config.seed, ridge=args.ridge)
    out = Path(args.table or f"latency-{config.space}-{device.type}.json")
    table.save(out)
    i = table.info
    print(f"wrote {out}: latency {i['latency_ms']['min']:.2f}-{i['latency_ms']['max']:.2f} ms (median "
          f"{i['latency_ms']['median']:.2f}); linear surrogate on {args.samples - i['held_out']} of them, on the "
          f"{i['held_out']} held out: R^2 {i['r2']:.3f}, mean absolute error {i['mae_ms']:.3f} ms (ridge {i['ridge']:g})")
    return 0


def _lm_info(args) -> int:
    from .run.lm import language_model_for_info

    model, genotype, units, vocab, n = language_model_for_info(args.genotype, args.dataset, args.units)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "network": "RNNModel", "genotype": genotype.to_text(),
                          "units": units, "vocab": vocab, "params": n}))
        return 0
    print(genotype.to_text())
    print(f"language model for {args.dataset}: {units} units, vocabulary {vocab:,}, decoder tied to the embedding")
    print(f"parameters:     {n / 1e6:.2f}M  ({n:,})")
    return 0


def _cmd_info(args) -> int:
    from .data.text import PAPER_VOCABULARIES
    from .nets import network_for_spec
    from .nets.profile import profile_network

    if args.dataset in PAPER_VOCABULARIES:
        return _lm_info(args)
    if args.units:
        raise DartsNasError("--units sizes a language model (--dataset ptb or wikitext-2)")

    model, dataset = network_for_spec(args.genotype, args.dataset, args.channels, args.layers, args.num_classes)
    size = args.image_size or (224 if dataset == "imagenet" else 32)
    p = profile_network(model, size)
    h = model.hparams
    latency = _network_latency(model, size, args) if args.latency else None
    if args.json:
        extra = {} if latency is None else {"latency_ms": latency, "latency_images": args.images,
                                            "latency_device": args.device}
        print(json.dumps({"dataset": dataset, "network": type(model).__name__, "genotype": model.genotype.to_text(),
                          **{k: h[k] for k in ("C", "layers", "num_classes")}, **p.to_dict(), **extra}))
        return 0
    print(model.genotype.to_text())
    print(f"{type(model).__name__} for {dataset}: C={h['C']}, {h['layers']} {getattr(model, 'depth_unit', 'cells')}, "
          f"{h['num_classes']} classes, input {size}x{size}")
    print(f"parameters:     {p.params / 1e6:.2f}M  ({p.params:,}; the papers' count, auxiliary head excluded)")
    if p.params_total != p.params:
        print(f"  with aux head {p.params_total / 1e6:.2f}M  ({p.params_total:,})")
    print(f"multiply-adds:  {p.multiply_adds / 1e6:.0f}M  ({p.multiply_adds:,}; one image, inference, "
          f"torch.utils.flop_counter)")
    if latency is not None:
        print(f"latency:        {latency:.2f} ms  (median of {args.repeats} forwards of {args.images} image"
              f"{'s' if args.images != 1 else ''}, eval mode, {args.device})")
    if args.trace and hasattr(model, "channel_trace"):
        print("cells (C_prev_prev, C_prev, C):")
        for i, cell in enumerate(model.cells):
            print(f"  {i:2d} {'reduce' if cell.reduction else 'normal'} {cell.channels}")
    return 0


def _network_latency(model, size: int, args) -> float:
    import torch

    from .latency import measure_network
    from .run.common import resolve_device

    if args.images < 1 or args.repeats < 1:
        raise DartsNasError("--images and --repeats must be positive")
    device = resolve_device(args.device)
    model.to(device)
    x = torch.randn(args.images, model.hparams["in_channels"], size, size, device=device)
    return measure_network(model, x, args.repeats)


def _cmd_models(args) -> int:
    from .nets import create_model, list_models
    from .nets.profile import count_parameters

    for name in list_models():
        if args.verbose:
            print(f"{name:<24} {count_parameters(create_model(name)) / 1e6:6.2f}M params")
        else:
            print(name)
    return 0


def _cmd_derive(args) -> int:
    from .run.dispatch import derive_checkpoint

    derived = derive_checkpoint(args.run)
    print(json.dumps(derived.genotype.to_dict()) if args.json else f"{derived.header}\n{derived.genotype.to_text()}")
    if derived.notes and not args.json:
        print(derived.notes)
    if args.alphas:
        print(derived.alpha_table())
    return 0


def _cmd_nb201(args) -> int:
    from .nb201_table import NB201Table

    from .genotypes import NB201Arch
    from .run import run_genotype

    table = NB201Table.load(args.table)
    arch, source = run_genotype(args.arch, NB201Arch)
    result = table.lookup(arch)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        if source != args.arch:
            print(f"# {source}")
        print(result.arch)
        print(result.to_text())
    return 0


def _cmd_genotypes(args) -> int:
    from .genotypes import PUBLISHED, RECURRENT_PUBLISHED, RecurrentGenotype, get_genotype, load_genotype

    if args.name is None:
        width = max(map(len, [*PUBLISHED, *RECURRENT_PUBLISHED]))
        print("CNN cells (image networks):")
        for name, g in PUBLISHED.items():
            print(f"  {name:<{width}}  {g.to_text()}")
        print("recurrent cells (language models; `genotypes NAME --recurrent`):")
        for name, g in RECURRENT_PUBLISHED.items():
            print(f"  {name:<{width}}  {g.to_text()}")
        return 0
    g = load_genotype(args.name, RecurrentGenotype) if args.recurrent or args.name.upper() == "ENAS" else \
        get_genotype(args.name)
    print(json.dumps(g.to_dict()) if args.json else g.to_text())
    return 0


def _cmd_rl_run(args) -> int:
    from .rl.config import RL_PRESETS, RLConfig, rl_config
    from .rl.run import resume_rl, start_rl

    command = f"rl {args.rl_command}"

    def make(name, config_file, **overrides):
        return rl_config(name, config_file, command, **overrides)

    def start(config, out):
        return start_rl(config, out, say, command)

    done, status = _run_epochs(args, command, RLConfig, make, RL_PRESETS, start, resume_rl, unit="iteration")
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
    from .rl.run import evaluate_rl

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


def _cmd_presets(args) -> int:
    from .config import PRESETS, TRAIN_PRESETS, preset_config, train_preset_config

    from .rl.config import RL_PRESETS, RLConfig

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


def _cmd_bench(args) -> int:
    from .bench import (bench_search, bench_train, format_scaling_table, format_table, format_train_table,
                        machine_description)

    if args.steps < 1 or args.warmup < 0:
        raise DartsNasError("--steps must be at least 1 and --warmup at least 0")
    if args.nproc < 1 or args.nproc > 1 and args.what not in ("search", "train"):
        raise DartsNasError("--nproc N (N >= 1) times the search or train step over N ranks")
    if args.nproc > 1 and args.cuda_graphs:
        raise DartsNasError("--cuda-graphs is not supported in a distributed run yet; drop it with --nproc")
    if args.what == "reversible":
        from .bench import bench_reversible, format_reversible_table

        try:
            depths = tuple(int(d) for d in args.depths.split(",")) if args.depths != "16,32,32" else (1, 2, 4, 8)
        except ValueError:
            raise DartsNasError(f"--depths {args.depths!r}: expected block counts like 1,2,4,8") from None
        results = bench_reversible(device=args.device, depths=depths, splits=args.splits,
                                   d_model=args.d_model, batch_size=args.batch_size or 32, length=args.bptt,
                                   vocab=args.vocab, bank=args.op_bank, steps=args.steps, warmup=args.warmup)
        table = format_reversible_table(results)
    elif args.what == "rl":
        from .bench import bench_rl, format_rl_table

        try:
            depths = tuple(int(d) for d in args.depths.split(","))
        except ValueError:
            raise DartsNasError(f"--depths {args.depths!r}: expected channel counts like 16,32,32") from None
        results = bench_rl(device=args.device, depths=depths, act_batch=args.act_batch,
                           minibatch=args.batch_size or 256, genotype=args.rl_genotype, steps=args.steps,
                           warmup=args.warmup)
        table = format_rl_table(results)
    elif args.what == "hypergradient":
        from .bench import bench_hypergradient, format_hypergradient_table

        if not args.run:
            raise DartsNasError("bench hypergradient compares the two recurrent hypergradients at a search's "
                                "checkpoint: give --run RUN_DIR (a darts-rnn search) and, if it moved, --data")
        results = bench_hypergradient(args.run, args.data or "", args.batches)
        table = format_hypergradient_table(results)
    elif args.what == "estimators":
        from .bench import bench_estimators, format_estimators_table

        results = bench_estimators(samples=args.samples)
        table = format_estimators_table(results)
    elif args.what == "signals":
        from .bench import bench_signals, format_signals_table

        results = bench_signals(args.preset or ["darts-cifar10", "darts-cifar10-2nd", "pc-darts-cifar10",
                                                "darts-nb201", "single-darts-nb201", "gdas-nb201", "demo"],
                                device=args.device, steps=args.steps, warmup=args.warmup,
                                batch_size=args.batch_size or 0)
        table = format_signals_table(results)
    elif args.what in ("rnn-search", "lm-train"):
        from .bench import bench_rnn, format_rnn_table

        search = args.what == "rnn-search"
        common = dict(batch_size=args.batch_size or (256 if search else 64), bptt=args.bptt,
                      units=args.units or (300 if search else 850), vocab=args.vocab, steps=args.steps,
                      warmup=args.warmup)
        if min(common["batch_size"], common["bptt"], common["units"], common["vocab"]) < 1:
            raise DartsNasError("--batch-size, --bptt, --units and --vocab must be positive")
        results = bench_rnn(args.what, device=args.device, orders=args.order, hvps=args.hvp, **common) if search \
            else bench_rnn(args.what, device=args.device, genotype=args.genotype, **common)
        table = format_rnn_table(results)
    elif args.what == "train":
        if args.fuse_ops or args.checkpoint_cells or args.partial_channels != 1 or args.edge_normalization:
            raise DartsNasError("--fuse-ops, --checkpoint-cells, --partial-channels and --edge-normalization are "
                                "search settings")
        results = bench_train(device=args.device, batch_size=args.batch_size or 96, channels=args.channels or 36,
                              layers=args.layers or 20, genotype=args.genotype, precisions=args.precision,
                              channels_last=args.channels_last, steps=args.steps, warmup=args.warmup,
                              cuda_graphs=args.cuda_graphs, check=args.check, nproc=args.nproc)
        table = format_scaling_table(results) if args.nproc > 1 else format_train_table(results)
    else:
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
        table = format_scaling_table(results) if args.nproc > 1 else format_table(results)
    print(f"\n{machine_description(args.device)}, {time.strftime('%Y-%m-%d')}")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error printed once under torchrun (by rank 0; the others exit with it silently)."""

    def error(self, message):
        if not distributed.is_main():
            sys.exit(2)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS, TRAIN_PRESETS, TrainConfig, add_config_arguments
    from .precision import PRECISIONS
    from .rl.config import RL_PRESETS, RLConfig
    from .strategies import HVP_METHODS, STRATEGIES

    parser = _Parser(prog="darts-nas", description="Differentiable architecture search (DARTS).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("search", help="run a DARTS search", description="Run a DARTS search. A preset sets the "
                       "paper's values; every flag below overrides one of them.")
    p.add_argument("--preset", choices=list(PRESETS), help="paper settings to start from")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search in RUN_DIR from its last checkpoint")
    p.add_argument("--config", metavar="FILE", help="start from a run's config.json (repeat or vary that run; "
                   "flags still override)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this invocation (resume later)")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("train", help="train an evaluation network from scratch",
                       description="Train the evaluation network of a genotype from scratch. A preset sets the "
                       "paper's recipe (default: the CIFAR-10 one); every flag below overrides one value.")
    p.add_argument("--preset", choices=list(TRAIN_PRESETS), help="recipe to start from")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the training run in RUN_DIR from its checkpoint")
    p.add_argument("--config", metavar="FILE", help="start from a training run's config.json (flags still override)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this invocation (resume later)")
    p.add_argument("--scale-lr", action="store_true", help="under torchrun: the linear scaling rule, --batch-size per "
                   "rank and --lr, --lr-min x world size (default: --batch-size is the global batch, lr as given)")
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy of a trained network, or valid/test perplexity of a language "
                       "model")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="best.pt, last.pt, checkpoint.pt or a train run directory")
    p.add_argument("--data", help="dataset location (default: the one it was trained with)")
    p.add_argument("--dataset", choices=TrainConfig.choices_for("dataset"),
                   help="dataset kind (default: the one it was trained with)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--limit", type=int, help="only N test images (the first N of CIFAR, a seeded random N of folders)")
    p.add_argument("--genotype", help="load the weights into this genotype's network instead of the recorded one")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("info", help="parameters and multiply-adds of an evaluation network")
    p.add_argument("genotype", metavar="GENOTYPE", help="published name, zoo model name, run directory, file or text")
    p.add_argument("--dataset", choices=["cifar10", "cifar100", "imagenet", "ptb", "wikitext-2"],
                   help="network of this dataset (default cifar10; ptb, wikitext-2: the language model of a "
                   "recurrent genotype)")
    p.add_argument("--units", type=int, help="language model: embedding and hidden size (default: the paper's)")
    p.add_argument("--channels", type=int, help="initial channels C (default: the paper's)")
    p.add_argument("--layers", type=int, help="cells (default: the paper's)")
    p.add_argument("--num-classes", type=int, help="classes (default: the dataset's)")
    p.add_argument("--image-size", type=int, help="input side for multiply-adds (default 32, imagenet 224)")
    p.add_argument("--trace", action="store_true", help="also print the channels of every cell")
    p.add_argument("--latency", action="store_true", help="also measure the inference latency: median of --repeats "
                   "forwards of --images images in eval mode on --device (synchronized on CUDA)")
    p.add_argument("--device", default="cpu", help="device of --latency (cpu, cuda, cuda:N, auto)")
    p.add_argument("--images", type=int, default=1, help="batch of --latency (default 1)")
    p.add_argument("--repeats", type=int, default=10, help="timed forwards of --latency (default 10)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("models", help="the model zoo: names for darts_nas.create_model")
    p.add_argument("-v", "--verbose", action="store_true", help="also count parameters")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("derive", help="the derived cell of a search run or checkpoint")
    p.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--json", action="store_true", help="print the JSON form")
    p.add_argument("--alphas", action="store_true", help="also print softmax(alpha) per edge")
    p.set_defaults(func=_cmd_derive)

    p = sub.add_parser("nb201", help="NAS-Bench-201: the benchmark accuracy of a cell")
    nb = p.add_subparsers(dest="nb201_command", metavar="ACTION", required=True)
    q = nb.add_parser("lookup", help="test accuracies (CIFAR-10, CIFAR-100, ImageNet16-120) of a cell")
    q.add_argument("arch", metavar="ARCH_STRING|RUN_DIR", help="|op~0|+|op~0|op~1|+|op~0|op~1|op~2|, or a NAS-Bench-201 "
                   "search run directory (its found cell, or the current one of an unfinished run)")
    q.add_argument("--table", required=True, metavar="FILE", help="the results CSV (index,arch_str,cifar10_test_acc,"
                   "cifar100_test_acc,imagenet16_120_test_acc)")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=_cmd_nb201)

    p = sub.add_parser("genotypes", help="list the published genotypes, or show one")
    p.add_argument("name", nargs="?")
    p.add_argument("--recurrent", action="store_true", help="the recurrent cell of that name (DARTS_V1, DARTS_V2)")
    p.add_argument("--json", action="store_true", help="print the JSON form")
    p.set_defaults(func=_cmd_genotypes)

    p = sub.add_parser("plot", help="pictures of a run (cell, op weights, collapse signals, learning curves) or of a "
                       "cell", description="Write the pictures of a run directory (default into RUN_DIR/plots), or "
                       "the diagram of a genotype (a published name, a genotype file or pasted text).")
    p.add_argument("target", metavar="RUN_DIR|GENOTYPE")
    p.add_argument("--out", metavar="DIR", help="where to write (default RUN_DIR/plots, or ./plots for a genotype)")
    p.add_argument("--format", nargs="+", default=["png", "svg"], choices=["png", "svg", "pdf"])
    p.add_argument("--dot", action="store_true", help="also write each cell's Graphviz source (.dot)")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("report", help="one self-contained HTML page of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE", help="default RUN_DIR/report.html (one run) or ./report.html")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="search runs side by side: mean +- std per method over seeds")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--plot", metavar="FILE", help="also overlay the runs' curves in an image (png, svg, pdf)")
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("export", help="a trained network as ONNX or TorchScript, checked against PyTorch")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="best.pt, last.pt, checkpoint.pt or a train run directory")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", metavar="FILE", help="default: beside the checkpoint, .onnx or .pt")
    p.add_argument("--steps", type=int, help="language model: the fixed window length (default its BPTT)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("latency-table", help="measure a space's architectures on this device and fit the latency "
                       "surrogate a search penalizes (--latency-table)",
                       description="Measure random discrete architectures of a search space's supernet on this "
                       "device (median of repeated timed forwards, synchronized on CUDA) and fit a linear surrogate "
                       "from the op choices to milliseconds (R^2 and error on held-out architectures). The search "
                       "settings below (--preset, --space, --channels, --layers, ...) say which supernet.")
    p.add_argument("--preset", choices=list(PRESETS), help="the search whose supernet to measure")
    p.add_argument("--samples", type=int, default=200, help="random architectures measured (a fifth held out)")
    p.add_argument("--repeats", type=int, default=10, help="timed forwards per architecture (the median is kept)")
    p.add_argument("--images", type=int, default=24, help="images per forward (UNAS: 24)")
    p.add_argument("--table", metavar="FILE", help="where to write it (default latency-<space>-<device>.json)")
    p.add_argument("--ridge", type=float, default=0.0, help="ridge weight of the fit (UNAS: 1; default 0: the best "
                   "of 0.1-1000 by 5-fold cross-validation on the fitted part)")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_latency_table)

    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("-v", "--verbose", action="store_true", help="show every value")
    p.set_defaults(func=_cmd_presets)

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

    p = sub.add_parser("bench", help="benchmarks (median s/step, images/s, peak memory)")
    p.add_argument("what", choices=["search", "train", "rnn-search", "lm-train", "signals", "estimators",
                                    "hypergradient", "rl", "reversible"],
                   help="search: the search step; train: the evaluation network's training step; rnn-search: the "
                   "recurrent search step; lm-train: the language model's training step; signals: the share of a "
                   "preset's search that its Hessian collapse signal adds; estimators: bias and variance of the "
                   "architecture-gradient estimators (REINFORCE, UNAS, relaxed) against an enumerated gradient; hypergradient: "
                   "the recurrent second-order gradient exact vs the DARTS authors' way at a search's checkpoint; rl: the RL "
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


if __name__ == "__main__":
    sys.exit(main())
