"""info, models, derive, nb201, genotypes: what a network or a cell is, counted, derived or looked up."""

from __future__ import annotations

import json

from ..errors import DartsNasError


def _lm_info(args) -> int:
    from ..run.lm import language_model_for_info

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
    from ..data.text import PAPER_VOCABULARIES
    from ..nets import network_for_spec
    from ..nets.profile import profile_network

    for flag in ("image_size", "units", "channels", "layers", "num_classes"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise DartsNasError(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
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

    from ..strategies.latency import measure_network
    from ..run.common import resolve_device

    if args.images < 1 or args.repeats < 1:
        raise DartsNasError("--images and --repeats must be positive")
    device = resolve_device(args.device)
    model.to(device)
    x = torch.randn(args.images, model.hparams["in_channels"], size, size, device=device)
    return measure_network(model, x, args.repeats)


def _cmd_models(args) -> int:
    from ..nets import create_model, list_models
    from ..nets.profile import count_parameters

    for name in list_models():
        if args.verbose:
            print(f"{name:<24} {count_parameters(create_model(name)) / 1e6:6.2f}M params")
        else:
            print(name)
    return 0


def _cmd_derive(args) -> int:
    from ..run.dispatch import derive_checkpoint

    derived = derive_checkpoint(args.run)
    print(json.dumps(derived.genotype.to_dict()) if args.json else f"{derived.header}\n{derived.genotype.to_text()}")
    if derived.notes and not args.json:
        print(derived.notes)
    if args.alphas:
        print(derived.alpha_table())
    return 0


def _cmd_nb201(args) -> int:
    from ..spaces.nb201_table import NB201Table

    from ..genotypes import NB201Arch
    from ..run import run_genotype

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
    from ..genotypes import PUBLISHED, RECURRENT_PUBLISHED, RecurrentGenotype, get_genotype, load_genotype

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


def register(sub) -> None:
    """The inspection commands."""
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
