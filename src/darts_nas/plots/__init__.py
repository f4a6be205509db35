"""Pictures of what a search or training run did: cell diagrams of every space (:mod:`.cells`), the op weights
per edge over the epochs, the collapse signals and the learning curves (:mod:`.curves`), a self-contained HTML
report (:mod:`.report`), a comparison of runs across seeds and methods (:mod:`.compare`), and TensorBoard logging
(:mod:`.tensorboard`).

Drawing needs matplotlib and networkx (``pip install 'darts-nas[plot]'``), TensorBoard the tensorboard package
(``darts-nas[tensorboard]``); without them, the command that needs them says so in one line. No Graphviz binary
is needed (``--dot`` writes the Graphviz source for those who have it)."""

from __future__ import annotations

import importlib

from ..errors import DartsNasError

EXTRAS = {"matplotlib": "plot", "networkx": "plot", "tensorboard": "tensorboard", "onnx": "export",
          "onnxruntime": "export", "onnxscript": "export"}


def need(module: str, what: str):
    """Import an optional dependency, or stop with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        root = module.split(".")[0]
        extra = EXTRAS.get(root, "plot")
        raise DartsNasError(f"{what} needs {root}, which is not installed: pip install 'darts-nas[{extra}]'") from None


def new_figure(width: float, height: float):
    """A matplotlib Figure without pyplot's global state (no display needed)."""
    need("matplotlib", "drawing")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")
