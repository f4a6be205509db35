"""A cell as a picture needs it: its nodes (inputs on the left, intermediate nodes, one output) and its edges, each
labelled with its op. Every genotype type gives its cells as :class:`CellGraph` (``genotype.graphs()``); the
drawing (:mod:`darts_nas.plots.cells`) and the Graphviz source (:meth:`CellGraph.to_dot`) read nothing else, so a
new space's cells are drawn once its genotype type says what they are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellGraph:
    name: str                                   # "normal", "reduce", "recurrent", "cell"
    inputs: tuple[str, ...]                     # the cell's inputs (drawn first)
    nodes: tuple[str, ...]                      # intermediate nodes, in computation order
    output: str                                 # the cell's output
    edges: tuple[tuple[str, str, str], ...]     # (from, to, op); op "" for the output's concatenation/average
    output_rule: str = "concat"                 # how the output combines its inputs (label of the output node)

    @property
    def all_nodes(self) -> tuple[str, ...]:
        return (*self.inputs, *self.nodes, self.output)

    def to_dot(self) -> str:
        """Graphviz source (``dot -Tpng``), left to right, op names on the edges."""
        def q(s: str) -> str:
            return '"' + s.replace('"', '\\"') + '"'

        lines = [f"digraph {q(self.name)} {{", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", '
                 'fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];']
        lines += [f"  {q(n)} [fillcolor=lightblue];" for n in self.inputs]
        lines += [f"  {q(n)} [fillcolor=lightyellow];" for n in self.nodes]
        lines.append(f"  {q(self.output)} [fillcolor=palegreen, label={q(f'{self.output} ({self.output_rule})')}];")
        for a, b, op in self.edges:
            lines.append(f"  {q(a)} -> {q(b)}" + (f" [label={q(op)}];" if op else " [style=dashed];"))
        lines.append("}")
        return "\n".join(lines) + "\n"
