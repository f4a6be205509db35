"""`--tensorboard`: each epoch's figures as TensorBoard events in RUN_DIR/tensorboard (``tensorboard --logdir
RUN_DIR``), through ``torch.utils.tensorboard``: every number of the epoch's record as a scalar (losses,
accuracies, perplexities, learning rate, collapse signals, NAS-Bench-201 accuracies), the op weight of every op
on every edge, and the cell diagram as an image."""

from __future__ import annotations

from pathlib import Path

from . import need


def available() -> None:
    """Stop with one line if tensorboard (or the drawing it uses for the cell image) is not installed."""
    need("tensorboard", "--tensorboard")
    need("matplotlib", "--tensorboard (the cell image)")
    need("networkx", "--tensorboard (the cell image)")


def scalars(record: dict) -> dict[str, float]:
    """The record's numbers by tag: top-level ones under epoch/, nested ones (nb201) under their key."""
    out = {}
    for k, v in record.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)) and k != "epoch":
            out[f"epoch/{k}"] = float(v)
        elif isinstance(v, dict) and k not in ("alphas", "op_weights", "edges", "betas", "edge_weights"):
            for k2, v2 in v.items():
                if isinstance(v2, (int, float)) and not isinstance(v2, bool):
                    out[f"{k}/{k2}"] = float(v2)
    return out


def op_weight_scalars(record: dict) -> dict[str, float]:
    """op_weights/<cell>/<edge>/<op> for every op weight of the record."""
    out = {}
    for cell, rows in record.get("op_weights", {}).items():
        primitives = record.get("columns", {}).get(cell) or record.get("primitives") or []
        names = record.get("edges", {}).get(cell) or [f"edge {e}" for e in range(len(rows))]
        for e, row in enumerate(rows):
            for k, w in enumerate(row):
                op = primitives[k] if k < len(primitives) else f"op {k}"
                out[f"op_weights/{cell}/{names[e]}/{op}".replace("{", "").replace("}", "")] = float(w)
    return out


def figure_image(fig):
    """An RGB array [H, W, 3] of a matplotlib figure."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLog:
    def __init__(self, log_dir):
        available()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir))

    def epoch(self, record: dict, step: int, genotype=None) -> None:
        for tag, value in {**scalars(record), **op_weight_scalars(record)}.items():
            self.writer.add_scalar(tag, value, step)
        if genotype is not None:
            from .cells import cell_figure

            self.writer.add_image("cell", figure_image(cell_figure(genotype)), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
