"""What a run did over its epochs, from its metrics.jsonl: the op weights of every edge (collapse shows as one op,
often skip_connect or none, taking over), the collapse signals, and the learning curves. Each figure is built
from the records alone, so it can be drawn for a finished run, a stopped one, or one still running."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import DartsNasError
from . import new_figure

# One colour per op in the alpha panels (matplotlib's tab10), then line styles beyond ten ops.
OP_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
              "#17becf")
STYLES = ("-", "--", ":", "-.")


def read_history(run_dir) -> list[dict]:
    """The records of metrics.jsonl, one per finished epoch."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise DartsNasError(f"{run_dir}: no metrics.jsonl (not a run directory, or no epoch has finished)")
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise DartsNasError(f"{path} line {i}: not a JSON record") from None
    if not records:
        raise DartsNasError(f"{path}: no epoch has finished yet")
    return records


def alpha_trajectories(history: list[dict]) -> dict[str, list[list[list[float]]]]:
    """Per alpha matrix, the op weights of each epoch: [epoch][edge][op] (a search run's records)."""
    out: dict[str, list] = {}
    for r in history:
        for cell, w in r.get("op_weights", {}).items():
            out.setdefault(cell, []).append(w)
    return out


def alpha_figure(history: list[dict], primitives=None):
    """One panel per edge: each op's weight over the epochs. None for a run without alphas (training). The op
    names come from the records (or `primitives`, for runs recorded before the records held them)."""
    traj = alpha_trajectories(history)
    if not traj:
        return None
    last = history[-1]
    epochs = [r["epoch"] for r in history]
    primitives = last.get("primitives") or primitives or [f"op {k}" for k in
                                                            range(len(next(iter(traj.values()))[0][0]))]
    names = last.get("edges", {})
    panels = [(cell, e) for cell, w in traj.items() for e in range(len(w[0]))]
    cols = min(7, len(panels)) if len(panels) > 6 else len(panels)
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(2.2 * cols + 1.6, 1.75 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).flatten()
    for ax, (cell, e) in zip(axes, panels):
        for k, op in enumerate(last.get("columns", {}).get(cell) or primitives):
            line, = ax.plot(epochs, [w[e][k] for w in traj[cell]], color=OP_PALETTE[k % len(OP_PALETTE)],
                            ls=STYLES[k // len(OP_PALETTE) % len(STYLES)], lw=1.4, label=op)
            line.set_gid(f"alpha|{cell}|{e}|{op}")
        edge = names.get(cell, [])[e] if e < len(names.get(cell, [])) else f"edge {e}"
        ax.set_title(f"{cell}: {edge}".replace("_{", "_").replace("}", ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    column_sets = {tuple(last.get("columns", {}).get(cell) or primitives) for cell in traj}
    if len(column_sets) == 1:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=8, title="op", title_fontsize=8)
    else:  # matrices that choose different things (UNAS' inputs and ops): a legend in each panel
        for ax in axes[:len(panels)]:
            ax.legend(fontsize=5, loc="upper left", frameon=False)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("op weight", fontsize=9)
    fig.suptitle("op weights per edge (the relaxation's deterministic weights of the alphas)", fontsize=10)
    return fig


SIGNALS = (("param_free_ops", "parameter-free ops in the derived cell"),
           ("hessian_eigenvalue", "dominant Hessian eigenvalue (alphas)"),
           ("nb201", "NAS-Bench-201 test accuracy of the cell (%)"),
           ("latency", "latency of the derived cell (ms)"))
LATENCY = (("latency_ms", "measured"), ("latency_estimate_ms", "surrogate"))


def signal_series(history: list[dict]) -> dict[str, tuple[list, list]]:
    """Each collapse signal present in the records: (epochs, values); NB201 accuracies one series per dataset."""
    out = {}
    for key, _ in SIGNALS:
        if key == "nb201":
            for r in history:
                for name, v in r.get("nb201", {}).items():
                    if name.endswith("_test_acc") and v is not None:
                        xs, ys = out.setdefault(f"nb201/{name[:-len('_test_acc')]}", ([], []))
                        xs.append(r["epoch"])
                        ys.append(v)
            continue
        if key == "latency":
            for field, name in LATENCY:
                points = [(r["epoch"], r[field]) for r in history if r.get(field) is not None]
                if points:
                    out[f"latency/{name}"] = ([p[0] for p in points], [p[1] for p in points])
            continue
        points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        if points:
            out[key] = ([p[0] for p in points], [p[1] for p in points])
    return out


def signals_figure(history: list[dict]):
    series = signal_series(history)
    if not series:
        return None
    shown = [(key, title) for key, title in SIGNALS if any(s == key or s.startswith(key + "/") for s in series)]
    fig = new_figure(4.2 * len(shown), 3.2)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (key, title) in zip(axes, shown):
        for name, (xs, ys) in series.items():
            if name == key or name.startswith(key + "/"):
                line, = ax.plot(xs, ys, marker="o", ms=3, label=name.split("/", 1)[-1])
                line.set_gid(f"signal|{name}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if key == "param_free_ops":
            ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if key in ("nb201", "latency"):
            ax.legend(fontsize=7)
    return fig


CURVES = (("loss", "_loss"), ("accuracy", "_acc"), ("perplexity", "_ppl"), ("return", "_return"),
          ("learning rate", "lr"))


def curve_series(history: list[dict]) -> dict[str, dict[str, tuple[list, list]]]:
    """The learning curves by panel: losses (every *_loss), accuracies (*_acc), perplexities (*_ppl), an RL
    agent's mean returns (*_return), the learning rate; (epochs, values) per key."""
    out: dict[str, dict] = {}
    for panel, suffix in CURVES:
        keys = sorted({k for r in history for k, v in r.items() if isinstance(v, (int, float)) and
                       not isinstance(v, bool) and (k == suffix if suffix == "lr" else k.endswith(suffix))})
        for k in keys:
            pts = [(r["epoch"], r[k]) for r in history if isinstance(r.get(k), (int, float))]
            out.setdefault(panel, {})[k] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def curves_figure(history: list[dict]):
    series = curve_series(history)
    if not series:
        return None
    fig = new_figure(3.8 * len(series), 3.2)
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (panel, lines) in zip(axes, series.items()):
        for k, (xs, ys) in lines.items():
            scale = 100.0 if panel == "accuracy" else 1.0
            line, = ax.plot(xs, [y * scale for y in ys], marker="o", ms=3, label=k)
            line.set_gid(f"curve|{k}")
        if panel == "perplexity" and all(y > 0 for _, ys in lines.values() for y in ys):
            ax.set_yscale("log")
        ax.set_title(panel + (" (%)" if panel == "accuracy" else ""), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def grid_figure(history: list[dict]):
    """The HyperCuboid's weights at the last epoch (records with a "grid" entry): one heat map of c_in x c_out per
    pass, op and layer, one colour scale, and the strongest path's choices boxed. None for other runs."""
    last = history[-1]
    grid = last.get("grid")
    if not grid:
        return None
    from matplotlib.patches import Rectangle

    channels, ops, layers = grid["channels"], grid["ops"], grid["layers"]
    n = len(channels)
    path = set()
    try:
        from ..genotypes import HyperPath

        g = HyperPath.from_text(last.get("genotype", ""))
        path = {(k // 2, stride, c_in, c_out, op) for k, (stride, c_in, c_out, op) in enumerate(g.steps)}
    except DartsNasError:
        pass
    passes = [(name, int(name[-1])) for name in sorted(last["op_weights"])]
    panels = [(name, stride, o, op) for name, stride in passes for o, op in enumerate(ops)]
    values = [v for name, _ in passes for row in last["op_weights"][name] for v in row]
    vmin, vmax = min(values), max(values)
    fig = new_figure(2.3 * layers + 1.4, 2.0 * len(panels) + 0.8)
    axes = fig.subplots(len(panels), layers, squeeze=False)
    image = None
    for r, (name, stride, o, op) in enumerate(panels):
        for layer in range(layers):
            ax = axes[r][layer]
            row = last["op_weights"][name][layer]
            block = [[row[(i * n + j) * len(ops) + o] for j in range(n)] for i in range(n)]
            image = ax.imshow(block, vmin=vmin, vmax=vmax, cmap="viridis")
            for i in range(n):
                for j in range(n):
                    if (layer, stride, channels[i], channels[j], op) in path:
                        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", lw=2.2))
            ax.set_xticks(range(n), [str(c) for c in channels], fontsize=6)
            ax.set_yticks(range(n), [str(c) for c in channels], fontsize=6)
            ax.set_title(f"layer {layer}, stride {stride}, {op}", fontsize=7)
            if layer == 0:
                ax.set_ylabel("c_in", fontsize=7)
            if r == len(panels) - 1:
                ax.set_xlabel("c_out", fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.6, label="weight (softmax over the layer's block)")
    fig.suptitle(f"HyperCuboid weights at epoch {last['epoch']}; boxed: the strongest path", fontsize=10)
    return fig
