"""Every picture of a run directory (or of one genotype), written as files: what `darts-nas plot` does."""

from __future__ import annotations

from pathlib import Path

from ..errors import DartsNasError
from ..genotypes import load_genotype
from .cells import save_cell
from .curves import alpha_figure, curves_figure, grid_figure, read_history, signals_figure


def is_run_dir(path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "metrics.jsonl").is_file() or (p / "genotype.json").is_file())


def run_genotype(run_dir, history: list[dict] | None = None):
    """The run's cell: its genotype file (a finished search, any training run), else the last epoch's derived cell
    recorded in metrics.jsonl."""
    run_dir = Path(run_dir)
    if (run_dir / "genotype.json").is_file():
        return load_genotype(run_dir)
    history = history if history is not None else read_history(run_dir)
    text = history[-1].get("genotype")
    if not text:
        raise DartsNasError(f"{run_dir}: no genotype.json and no genotype in metrics.jsonl")
    return load_genotype(text)


def run_figures(run_dir) -> dict:
    """name -> matplotlib Figure for every picture the run has data for (cell, alphas, signals, curves)."""
    run_dir = Path(run_dir)
    history = read_history(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    from .cells import cell_figure

    try:
        genotype = run_genotype(run_dir, history)
    except DartsNasError:
        if not history:
            raise
        genotype = None  # a run without a cell (an RL agent with the IMPALA-CNN encoder): its curves only
    figures = {"cell": cell_figure(genotype, title=run_dir.name)} if genotype is not None else {}
    if history and history[-1].get("grid"):  # a grid search's weights: heat maps rather than one line per column
        figures["grid"] = grid_figure(history)
    elif history:
        figures["alphas"] = alpha_figure(history, recorded_primitives(run_dir))
    if history:
        figures["signals"] = signals_figure(history)
        figures["curves"] = curves_figure(history)
    return {name: fig for name, fig in figures.items() if fig is not None}


def recorded_primitives(run_dir):
    """The op names of a finished search (alphas.json), for records that do not hold them."""
    path = Path(run_dir) / "alphas.json"
    if path.is_file():
        import json
        try:
            return json.loads(path.read_text()).get("primitives")
        except ValueError:
            return None
    return None


def write_run_plots(run_dir, out=None, formats=("png", "svg"), dot: bool = False) -> list[Path]:
    """The run's pictures as files in `out` (default RUN_DIR/plots); the paths written."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in run_figures(run_dir).items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, format=fmt)
            written.append(path)
    if dot:
        for g in run_genotype(run_dir).graphs():
            path = out / f"cell-{g.name}.dot"
            path.write_text(g.to_dot())
            written.append(path)
    return written


def write_genotype_plot(spec, out=None, formats=("png", "svg"), dot: bool = False) -> list[Path]:
    """The diagram of a published name, a genotype file or pasted genotype text, in `out` (default ./plots)."""
    genotype = load_genotype(spec)
    name = spec if isinstance(spec, str) and spec.isidentifier() else "cell"
    return save_cell(genotype, Path(out or "plots") / name, formats, dot, title=name if name != "cell" else "")
