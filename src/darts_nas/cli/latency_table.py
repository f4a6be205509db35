"""latency-table: measure a space's architectures on this device and fit the surrogate a search penalizes."""

from __future__ import annotations

from pathlib import Path

from ..errors import DartsNasError


def _cmd_latency_table(args) -> int:
    import torch

    from ..config import preset_config, overrides_from_args
    from ..strategies.latency import build_table
    from ..run.common import resolve_device
    from ..run.search import build_search_model
    from ..spaces import get_space

    config = preset_config(args.preset, **overrides_from_args(args)).validate()
    if get_space(config.space).data_kind != "images":
        raise DartsNasError("latency tables measure image spaces")
    if args.samples < 10 or args.repeats < 1 or args.images < 1:
        raise DartsNasError("--samples must be at least 10, --repeats and --images at least 1")
    if args.table and Path(args.table).is_dir():
        raise DartsNasError(f"--table {args.table} is a directory; give the file to write")
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


def register(sub) -> None:
    """The latency-table command."""
    from ..config import PRESETS, add_config_arguments

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
