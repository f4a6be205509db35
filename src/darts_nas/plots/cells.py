"""Cell diagrams drawn with matplotlib (no Graphviz binary): nodes in layers by their longest path from the
inputs (networkx), edges as curved arrows with the op name on each, the output node saying how it combines its
inputs. Every node and edge artist carries an id (``node|CELL|NODE``, ``edge|CELL|FROM|TO|OP``), which the SVG
output keeps, so the drawing can be read back and checked against the genotype."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from . import need, new_figure

NODE_COLORS = {"input": "#cfe3f7", "node": "#fdf2c4", "output": "#cdeccd"}


def op_color(op: str) -> str:
    """A colour per kind of op, read from its name (convolutions blue, pooling orange, identities grey, none
    light grey, other operations such as activations purple)."""
    if not op:
        return "#7f7f7f"
    if op == "none":
        return "#bbbbbb"
    if "conv" in op:
        return "#1f5fa8"
    if "pool" in op:
        return "#d9731a"
    if "skip" in op or op == "identity":
        return "#555555"
    return "#7a3fa0"


def layers(graph) -> dict[str, int]:
    """Column of each node: 0 for the inputs, 1 + the deepest predecessor for the others, the output last."""
    nx = need("networkx", "drawing a cell")
    g = nx.MultiDiGraph()
    g.add_nodes_from(graph.all_nodes)
    g.add_edges_from((a, b) for a, b, _ in graph.edges)
    depth = {}
    for n in nx.topological_sort(g):
        preds = [depth[p] for p in g.predecessors(n)]
        depth[n] = 1 + max(preds) if preds else 0
    last = max([d for n, d in depth.items() if n != graph.output] + [0]) + 1
    depth[graph.output] = last
    return depth


def positions(graph) -> dict[str, tuple[float, float]]:
    """Columns by :func:`layers`, each centred, its nodes top to bottom in the cell's own order."""
    depth = layers(graph)
    columns: dict[int, list[str]] = {}
    for n in graph.all_nodes:
        columns.setdefault(depth[n], []).append(n)
    pos = {}
    for d, names in columns.items():
        for i, n in enumerate(names):
            pos[n] = (3.2 * d, 1.5 * ((len(names) - 1) / 2 - i))
    return pos


def _clearance(pos, a, b, rad: float) -> float:
    """How far the apex of the arc a -> b (arc3 with `rad`) stays from every other node."""
    (x0, y0), (x1, y1) = pos[a], pos[b]
    apex = ((x0 + x1) / 2 + rad * (y1 - y0) / 2, (y0 + y1) / 2 - rad * (x1 - x0) / 2)
    others = [p for n, p in pos.items() if n not in (a, b)]
    return min((abs(apex[0] - x) + 2 * abs(apex[1] - y) for x, y in others), default=0.0)


def draw_cell(ax, graph) -> None:
    """Draw one cell into a matplotlib Axes."""
    from matplotlib.patches import FancyArrowPatch

    pos = positions(graph)
    kinds = {**{n: "input" for n in graph.inputs}, **{n: "node" for n in graph.nodes}, graph.output: "output"}
    boxes = {}
    for n, (x, y) in pos.items():
        label = f"{n}\n({graph.output_rule})" if n == graph.output else n
        t = ax.text(x, y, label.replace("_{", "_").replace("}", ""), ha="center", va="center", fontsize=10,
                    zorder=3, bbox=dict(boxstyle="round,pad=0.45", fc=NODE_COLORS[kinds[n]], ec="#333333", lw=1.0))
        t.set_gid(f"node|{graph.name}|{n}")
        boxes[n] = t
    seen = Counter()
    extent = list(pos.values())
    for a, b, op in graph.edges:
        k = seen[(a, b)]
        seen[(a, b)] += 1
        (x0, y0), (x1, y1) = pos[a], pos[b]
        span = abs(x1 - x0) / 3.2
        rad = (0.12 + 0.08 * min(span, 3)) * (1 if k % 2 == 0 else -1) * (1 + k // 2)
        if k == 0 and span > 1:  # a long edge bends away from the nodes it passes
            rad = max((rad, -rad, 0.0, 2 * rad, -2 * rad), key=lambda r: _clearance(pos, a, b, r))
        color = op_color(op)
        arrow = FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                mutation_scale=12, lw=1.6 if op else 1.0, color=color,
                                linestyle="-" if op else (0, (3, 2)), patchA=boxes[a], patchB=boxes[b], zorder=1)
        arrow.set_gid(f"edge|{graph.name}|{a}|{b}|{op}")
        ax.add_patch(arrow)
        if op:
            # The label sits on the curve (arc3's quadratic Bezier, control point mid + rad (dy, -dx)) past its
            # middle, where the edges that leave one node have spread apart.
            t = 0.62
            cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
            lx = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t * t * x1
            ly = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t * t * y1
            extent.append((lx, ly))
            ax.text(lx, ly, op, ha="center", va="center", fontsize=7.5, color=color, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
        extent.append(((x0 + x1) / 2 + rad * (y1 - y0) / 2, (y0 + y1) / 2 - rad * (x1 - x0) / 2))  # curve's apex
    xs = [p[0] for p in extent]
    ys = [p[1] for p in extent]
    ax.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_aspect("equal")  # arc3 bends in display units: equal scales keep the labels on their curves
    ax.set_title(graph.name if graph.name.endswith("cell") else f"{graph.name} cell", fontsize=12)
    ax.set_axis_off()


def cell_figure(genotype, title: str = ""):
    """One figure with every cell of a genotype (normal and reduce; the recurrent cell; the NB201 cell)."""
    graphs = genotype.graphs()
    widths = [max(layers(g).values()) + 1 for g in graphs]
    heights = [max(Counter(layers(g).values()).values()) for g in graphs]
    fig = new_figure(max(6.0, 1.9 * max(widths)), sum(max(2.6, 1.25 * h) for h in heights) + 0.4)
    axes = fig.subplots(len(graphs), 1, squeeze=False)[:, 0]
    for ax, g in zip(axes, graphs):
        draw_cell(ax, g)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def save_cell(genotype, out: Path, formats=("png", "svg"), dot: bool = False, title: str = "") -> list[Path]:
    """Write the cell diagram as out.<format> for each format (and out-<cell>.dot with `dot`); the paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = cell_figure(genotype, title)
    written = []
    for fmt in formats:
        path = out.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt)
        written.append(path)
    if dot:
        for g in genotype.graphs():
            path = out.parent / f"{out.name}-{g.name}.dot"
            path.write_text(g.to_dot())
            written.append(path)
    return written
