"""`darts-nas compare RUN_DIR...`: several search runs side by side (e.g. 3 seeds x 2 methods). Runs whose
settings differ only in the seed (and where and how they ran) form one method; each method gets the mean and
sample standard deviation over its runs of the final NAS-Bench-201 accuracies, the parameter-free ops and the
search time, with the protocol recorded (which dataset was searched, with which split), since the
NAS-Bench-201 literature mixes up searching on CIFAR-10 only and searching on each dataset."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .. import distributed
from ..errors import DartsNasError
from ..spaces.nb201_table import DATASETS as NB201_DATASETS
from .curves import read_history

# Settings that do not make another method: where and how a run ran, and its seed.
NOT_METHOD = ("launch", "seed", "out", "data", "download", "device", "progress", "log_every", "nb201_table", "cuda_graphs",
              "tensorboard", "epochs")
NB201 = tuple(zip(NB201_DATASETS, ("CIFAR-10", "CIFAR-100", "ImageNet16-120")))  # the table's keys, shown as


def method_label(config: dict) -> str:
    """How a run's method reads: its space, the strategy's own description, the relaxation (and Max-W)."""
    from ..config import SearchConfig
    from ..strategies import strategy_from_config

    try:
        strategy = strategy_from_config(SearchConfig.from_record(config)).describe()
    except DartsNasError:
        strategy = config.get("strategy", "?")
    return f"{config.get('space', '?')}: {strategy}, {config.get('relaxation', '?')}" + \
        (" + Max-W" if config.get("max_w") else "")


def run_summary(run_dir) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise DartsNasError(f"{run_dir}: no config.json (not a run directory)")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DartsNasError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(config, dict) or "order" not in config:
        raise DartsNasError(f"{run_dir}: not a `darts-nas search` run (compare reads search runs)")
    history = read_history(run_dir)
    last = history[-1]
    split = Path(config["split_file"]).name if config.get("split_file") else f"train_portion {config['train_portion']}"
    launch = config.pop(distributed.LAUNCH_KEY, None)
    out = {"run": str(run_dir), "method": method_label(config), "seed": config.get("seed"),
           "launch": distributed.launch_text(launch if isinstance(launch, dict) else None),
           "searched": f"{config.get('dataset')} ({split}" + (f", limit {config['limit']}" if config.get("limit") else "")
           + ")", "epochs": last["epoch"], "genotype": last.get("genotype"),
           "param_free_ops": last.get("param_free_ops"), "search_seconds": sum(r.get("seconds", 0) for r in history),
           "val_acc": last.get("val_acc"),
           "group": json.dumps({k: v for k, v in config.items() if k not in NOT_METHOD}, sort_keys=True)}
    for key, _ in NB201:
        v = last.get("nb201", {}).get(f"{key}_test_acc")
        if v is not None:
            out[f"nb201_{key}"] = v
    return out


def mean_std(values: list) -> tuple[float, float] | None:
    """Mean and sample standard deviation (n - 1; 0 for one run) of the values present."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def compare_runs(run_dirs) -> dict:
    """{"runs": one summary per run, "methods": per method its runs' mean +- std}."""
    runs = [run_summary(d) for d in run_dirs]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["group"], []).append(r)
    labels: dict[str, int] = {}
    methods = []
    for members in groups.values():
        label = members[0]["method"]
        labels[label] = labels.get(label, 0) + 1
        if labels[label] > 1:  # same strategy, other settings (lr, batch, ...): a method of its own
            label = f"{label} (#{labels[label]})"
        for r in members:
            r["method"] = label
        summary = {"method": label, "runs": len(members), "seeds": [r["seed"] for r in members],
                   "searched": sorted({r["searched"] for r in members}),
                   "epochs": sorted({r["epochs"] for r in members}),
                   "distinct_genotypes": len({r["genotype"] for r in members})}
        for key in ("param_free_ops", "search_seconds", "val_acc", *(f"nb201_{k}" for k, _ in NB201)):
            ms = mean_std([r.get(key) for r in members])
            if ms is not None:
                summary[key] = {"mean": ms[0], "std": ms[1]}
        methods.append(summary)
    for r in runs:
        del r["group"]
    return {"runs": runs, "methods": methods}


def _pm(d: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    if d is None:
        return "-"
    return f"{d['mean'] * scale:.{digits}f} +- {d['std'] * scale:.{digits}f}"


def format_comparison(result: dict) -> str:
    lines = []
    head = f"{'method':<40} {'runs':>4} {'searched on':<40}"
    for _, name in NB201:
        head += f" {name:>16}"
    head += f" {'param-free ops':>14} {'search time (min)':>17}"
    lines += [head, "-" * len(head)]
    for m in result["methods"]:
        row = f"{m['method'][:40]:<40} {m['runs']:>4} {'; '.join(m['searched'])[:40]:<40}"
        for key, _ in NB201:
            row += f" {_pm(m.get(f'nb201_{key}')):>16}"
        row += f" {_pm(m.get('param_free_ops'), digits=1):>14} {_pm(m.get('search_seconds'), 1 / 60, 1):>17}"
        lines.append(row)
    lines.append("mean +- sample standard deviation over the runs of each method (n - 1; 0 for one run); NB201: the "
                 "benchmark's test accuracy (%) of each run's final cell")
    lines.append("")
    for r in result["runs"]:
        nb = ", ".join(f"{name} {r[f'nb201_{k}']:.2f}" for k, name in NB201 if f"nb201_{k}" in r)
        lines.append(f"{r['run']}  [{r['method']}, seed {r['seed']}, {r['epochs']} epochs, {r['launch']}]  "
                     f"{r['param_free_ops']} parameter-free ops{'; ' + nb if nb else ''}")
        lines.append(f"    {r['genotype']}")
    return "\n".join(lines)


def comparison_figure(run_dirs, result: dict):
    """The runs' curves overlaid, one colour per method: validation accuracy, and the NB201 CIFAR-10 accuracy
    of the cell over the epochs where recorded."""
    from . import new_figure
    from .curves import OP_PALETTE

    histories = [read_history(d) for d in run_dirs]
    has_nb = any("nb201" in r for h in histories for r in h)
    fig = new_figure(5.5 * (2 if has_nb else 1), 3.6)
    axes = fig.subplots(1, 2 if has_nb else 1, squeeze=False)[0]
    colors = {m["method"]: OP_PALETTE[i % len(OP_PALETTE)] for i, m in enumerate(result["methods"])}
    shown = set()
    for run, history in zip(result["runs"], histories):
        epochs = [r["epoch"] for r in history]
        label = run["method"] if run["method"] not in shown else None
        shown.add(run["method"])
        line, = axes[0].plot(epochs, [100 * r.get("val_acc", float("nan")) for r in history],
                             color=colors[run["method"]], alpha=0.8, label=label)
        line.set_gid(f"compare|val_acc|{run['run']}")
        if has_nb:
            line, = axes[1].plot(epochs, [r.get("nb201", {}).get("cifar10_test_acc", float("nan")) for r in history],
                                 color=colors[run["method"]], alpha=0.8)
            line.set_gid(f"compare|nb201|{run['run']}")
    axes[0].set_title("validation accuracy (%)", fontsize=9)
    if has_nb:
        axes[1].set_title("NAS-Bench-201 CIFAR-10 test accuracy of the cell (%)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig
