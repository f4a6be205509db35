"""search, train, evaluate: start or resume a search or a training run, and test a trained network."""

from __future__ import annotations

import json

from .common import run_epochs


def _cmd_search(args) -> int:
    from ..config import PRESETS, SearchConfig, preset_config
    from ..run import resume_search, start_search

    done, status = run_epochs(args, "search", SearchConfig, preset_config, PRESETS, start_search,
                               resume_search)
    if done is None:
        return status
    run, result = done
    d = result.run_dir
    print(f"\nderived cell ({run.config.dataset}, {result.epochs_done} epochs):\n{result.genotype.to_text()}")
    print(f"outputs in {d}/: genotype.txt, genotype.json, alphas.json, metrics.jsonl, checkpoint.pt, config.json")
    return 0


def _cmd_train(args) -> int:
    from ..config import TRAIN_PRESETS, TrainConfig, train_preset_config
    from ..run import resume_training, start_training

    done, status = run_epochs(args, "train", TrainConfig, train_preset_config, TRAIN_PRESETS, start_training,
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
    from ..run import evaluate_trained

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


def register(sub) -> None:
    """The run commands, in the order --help lists them."""
    from ..config import PRESETS, TRAIN_PRESETS, TrainConfig, add_config_arguments

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
