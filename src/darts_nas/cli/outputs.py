"""plot, report, compare, export: files made from runs (pictures, HTML, tables, exported networks)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from ..errors import DartsNasError

FIGURE_FORMATS = ("png", "svg", "pdf")


@contextmanager
def _writing(where):
    """An output path that cannot be written (a file where a folder goes, a folder where a file goes, no
    permission) is the user's to fix: one line, naming it."""
    try:
        yield
    except (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        raise DartsNasError(f"cannot write {e.filename or where}: {e.strerror or e}") from None


def _cmd_plot(args) -> int:
    from ..plots.run import is_run_dir, write_genotype_plot, write_run_plots

    formats = tuple(dict.fromkeys(args.format))
    with _writing(args.out or "plots"):
        if is_run_dir(args.target):
            written = write_run_plots(args.target, args.out, formats, args.dot)
        else:
            written = write_genotype_plot(args.target, args.out, formats, args.dot)
    folders = sorted({str(p.parent) for p in written})
    print(f"wrote {len(written)} files in {', '.join(folders)}: {', '.join(p.name for p in written)}")
    return 0


def _cmd_report(args) -> int:
    from ..plots.report import write_report

    with _writing(args.out or "report.html"):
        out = write_report(args.runs, args.out)
    print(f"wrote {out} (self-contained HTML: open it in a browser)")
    return 0


def _cmd_compare(args) -> int:
    from ..plots.compare import compare_runs, comparison_figure, format_comparison

    if args.plot and Path(args.plot).suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise DartsNasError(f"--plot {args.plot}: give a file ending in .{', .'.join(FIGURE_FORMATS)}")
    result = compare_runs(args.runs)
    print(format_comparison(result))
    if args.json:
        with _writing(args.json):
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        with _writing(args.plot):
            comparison_figure(args.runs, result).savefig(args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_export(args) -> int:
    from ..run.export import export_model

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


def register(sub) -> None:
    """The commands that write files from runs."""
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
