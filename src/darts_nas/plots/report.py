"""`darts-nas report RUN_DIR...`: one self-contained HTML page (images embedded as PNG data) with each run's
settings, cell diagram, op-weight trajectories, collapse signals, learning curves and final figures."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

from .. import distributed
from ..errors import DartsNasError
from .curves import read_history
from .run import is_run_dir, run_figures, run_genotype

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em;
margin-top: 2em; } h3 { margin-bottom: 0.3em; color: #444; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ddd; padding: 3px 8px;
text-align: left; } th { background: #f4f4f4; }
.figures td { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } pre { background: #f7f7f7; padding: 0.6em; white-space: pre-wrap;
word-break: break-all; font-size: 0.85em; } .muted { color: #777; font-size: 0.9em; }
nav a { margin-right: 1em; }
"""

# The final figures a report lists, in this order, when the last record has them.
FINAL_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "test_top5",
              "train_ppl", "val_ppl", "param_free_ops", "hessian_eigenvalue")


def png_data(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def final_figures(history: list[dict], run_dir: Path) -> dict:
    """The last epoch's figures (accuracies in %), the NB201 accuracies, and the run's total time."""
    if not history:
        return {}
    last = history[-1]
    out = {}
    for k in FINAL_KEYS:
        v = last.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = round(100 * v, 2) if k.endswith(("_acc", "_top5")) else v
    for k, v in last.get("nb201", {}).items():
        if k.endswith("_test_acc") or k == "cifar10_rank":
            out[f"NB201 {k}"] = v
    seconds = sum(r.get("seconds", 0) for r in history)
    out["time (h:mm:ss)"] = time.strftime("%H:%M:%S", time.gmtime(seconds))
    results = run_dir / "results.json"  # a language model's final perplexities
    if results.is_file():
        for k, v in json.loads(results.read_text()).items():
            if k.endswith("_ppl"):
                out[f"best model {k}"] = v
    return out


def read_run_config(run_dir: Path) -> dict:
    """A run's config.json ({} where it has none), or one clear error for a file that is not a JSON object."""
    path = run_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DartsNasError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(config, dict):
        raise DartsNasError(f"{path}: not a run's settings (expected a JSON object)")
    return config


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def run_section(run_dir: Path) -> str:
    history = read_history(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    config = read_run_config(run_dir)
    launch = config.pop(distributed.LAUNCH_KEY, None)
    genotype = run_genotype(run_dir, history)
    figures = run_figures(run_dir)
    anchor = html.escape(run_dir.name)
    parts = [f'<h2 id="{anchor}">{html.escape(str(run_dir))}</h2>']
    final = final_figures(history, run_dir)
    if isinstance(launch, dict):
        final["launched on"] = distributed.launch_text(launch)
    if final:
        parts.append("<h3>Final figures</h3><table class=\"figures\"><tr>" +
                     "".join(f"<th>{html.escape(k)}</th>" for k in final) + "</tr><tr>" +
                     "".join(f"<td>{_fmt(v)}</td>" for v in final.values()) + "</tr></table>")
    titles = {"cell": "Cell", "alphas": "Op weights per edge over the epochs", "signals": "Collapse signals",
              "curves": "Learning curves"}
    for name, fig in figures.items():
        parts.append(f"<h3>{titles.get(name, name)}</h3><img alt=\"{name}\" src=\"{png_data(fig)}\">")
        if name == "cell":
            parts.append(f"<pre>{html.escape(genotype.to_text())}</pre>")
    if config:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in config.items())
        parts.append(f"<details><summary>Settings ({len(config)})</summary><table>{rows}</table></details>")
    return "<section>" + "\n".join(parts) + "</section>"


def write_report(run_dirs, out=None) -> Path:
    """The HTML page of one or more runs; written to `out` (default RUN_DIR/report.html for one run,
    ./report.html for several). Returns its path."""
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not d.is_dir():
            raise DartsNasError(f"{d}: no such run directory")
        if not is_run_dir(d):
            raise DartsNasError(f"{d}: not a run directory (no metrics.jsonl or genotype.json)")
        read_run_config(d)
    out = Path(out) if out else (dirs[0] / "report.html" if len(dirs) == 1 else Path("report.html"))
    sections = [run_section(d) for d in dirs]
    nav = "<nav>" + "".join(f'<a href="#{html.escape(d.name)}">{html.escape(d.name)}</a>' for d in dirs) + "</nav>" \
        if len(dirs) > 1 else ""
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>darts-nas report: "
            f"{html.escape(', '.join(d.name for d in dirs))}</title><style>{STYLE}</style></head><body>"
            f"<h1>darts-nas report</h1><p class=\"muted\">{len(dirs)} run{'s' * (len(dirs) > 1)}, written "
            f"{time.strftime('%Y-%m-%d %H:%M')}</p>{nav}\n" + "\n".join(sections) + "\n</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
