"""The package's shape: a search space defined only here runs through every command with no edit to the
plumbing, and no module of the package imports itself in a circle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

import darts_nas
from darts_nas.cli import main
from darts_nas.config import SearchConfig
from darts_nas.errors import DartsNasError
from darts_nas.spaces import SPACES, register_space

from toy_space import ToyArch, ToySearchModel

PACKAGE = Path(darts_nas.__file__).parent


@pytest.fixture
def toy_space():
    register_space(ToySearchModel)
    try:
        yield ToySearchModel
    finally:
        SPACES.pop("toy", None)


TOY_FLAGS = ["--space", "toy", "--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "8",
             "--channels", "4", "--nodes", "2", "--batch-size", "16", "--epochs", "3", "--hessian-iters", "3",
             "--no-progress", "--log-every", "1"]


def test_a_space_defined_in_the_tests_runs_search_derive_and_resume(toy_space, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["search", *TOY_FLAGS, "--out", str(full)]) == 0
    out = capsys.readouterr().out
    assert "search: toy space, bilevel order 1" in out and "epoch   3/3" in out
    assert "chain  op weights, mean over edges" in out and "collapse signals:" in out

    # interrupted after one epoch, resumed: the same alphas, metrics and genotype as the uninterrupted run
    assert main(["search", *TOY_FLAGS, "--out", str(part), "--stop-after", "1"]) == 0
    assert "continue with: darts-nas search --resume" in capsys.readouterr().out
    assert main(["search", "--resume", str(part)]) == 0
    capsys.readouterr()

    def records(d):
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for r in rows:
            r.pop("seconds")
        return rows

    assert len(records(full)) == 3 and records(part) == records(full)
    final = records(full)[-1]
    assert {"hessian_eigenvalue", "param_free_ops", "alphas", "op_weights"} <= set(final)
    assert len(final["alphas"]["chain"]) == 2

    # the derived cell: the saved genotype, the checkpoint's, and the argmax of the recorded op weights agree
    saved = ToyArch.from_dict(json.loads((full / "genotype.json").read_text()))
    by_hand = tuple(("none", "skip_connect", "nor_conv_3x3")[max(range(3), key=row.__getitem__)]
                    for row in final["op_weights"]["chain"])
    assert saved.ops == by_hand
    assert main(["derive", str(full), "--alphas"]) == 0
    out = capsys.readouterr().out
    assert saved.to_text() in out and "chain:" in out and "edge 1:" in out
    assert main(["derive", str(full), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == saved.to_dict()


def test_a_new_space_gets_the_settings_checks(toy_space, capsys):
    with pytest.raises(DartsNasError, match="--fuse-ops does not apply to the toy space"):
        SearchConfig(space="toy", fuse_ops=True).validate()
    with pytest.raises(DartsNasError, match="at most 3 edges"):
        SearchConfig(space="toy", nodes=5).validate()
    SearchConfig(space="toy", nodes=3).validate()
    assert main(["search", "--space", "toy", "--cells-per-stage", "2"]) == 2
    assert "--cells-per-stage does not apply to the toy space (it belongs to the nb201 space)" in \
        capsys.readouterr().err


def test_an_unregistered_space_is_refused(capsys):
    assert "toy" not in SPACES
    with pytest.raises(DartsNasError, match="--space must be one of darts-cnn, nb201, darts-rnn"):
        SearchConfig(space="toy").validate()
    with pytest.raises(DartsNasError, match="not a SearchModel subclass"):
        register_space(int)


# -- no import circles ---------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every darts_nas module `path` imports, at module level or inside a function (a lazy import is still a
    dependency), resolved to the submodule when `from package import submodule` names one."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                cycle = visit(n)
                if cycle:
                    return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert "darts_nas.run.dispatch" in graph and "darts_nas.run.search" in graph["darts_nas.run.dispatch"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    # and the import reader sees lazy imports and `from package import submodule`
    graph = import_graph()
    assert "darts_nas.run.lm" in graph["darts_nas.cli.cells"]  # imported inside a function
    assert "darts_nas.spaces.mixed" in graph["darts_nas.spaces.nb201"]


def test_the_layers_import_downward_only():
    """Data flows CLI/config -> run -> strategies -> spaces -> ops: nothing below imports what is above it."""
    graph = import_graph()
    below = {"darts_nas.spaces", "darts_nas.strategies", "darts_nas.genotypes", "darts_nas.nets", "darts_nas.data",
             "darts_nas.ops"}
    above = ("darts_nas.run", "darts_nas.cli", "darts_nas.bench", "darts_nas.config", "darts_nas.rl")
    for module, deps in graph.items():
        if any(module == b or module.startswith(b + ".") for b in below):
            bad = [d for d in deps if d.startswith(above)]
            assert not bad, f"{module} imports {bad}"
    torch.manual_seed(0)  # keep the global generator as other tests expect after this module


def test_the_ops_are_the_lowest_layer():
    """Every op family is a module of the ops package, which imports nothing of the package but itself and errors."""
    graph = import_graph()
    families = {"darts", "sharp", "nb201", "unas", "hypercuboid", "mobile", "rl", "transformer"}
    assert {f"darts_nas.ops.{f}" for f in families} <= set(graph)
    for module, deps in graph.items():
        if module == "darts_nas.ops" or module.startswith("darts_nas.ops."):
            bad = [d for d in deps if not (d == "darts_nas.errors" or d.startswith("darts_nas.ops"))]
            assert not bad, f"{module} imports {bad}"


def test_the_command_line_sits_on_top():
    """The command's modules (darts_nas.cli and its command groups) are imported by nothing but the command's entry
    points; the benchmarks they run (darts_nas.bench and its modules) never import the command back."""
    graph = import_graph()
    assert {"darts_nas.cli.runs", "darts_nas.cli.bench", "darts_nas.bench.search",
            "darts_nas.bench.common"} <= set(graph)
    entry = {"darts_nas.__main__", "darts_nas.cli.__main__"}
    for module, deps in graph.items():
        if module not in entry and not (module == "darts_nas.cli" or module.startswith("darts_nas.cli.")):
            assert not [d for d in deps if d.startswith("darts_nas.cli")], f"{module} imports the command line"


# The package's layers, top to bottom (docs/architecture.md): a module may import its own package and the layers
# below its own, never one above or beside it.
LAYERS = [("__main__",), ("cli",), ("bench",), ("run",), ("rl", "plots"), ("config",), ("strategies",), ("spaces",),
          ("nets", "data"), ("genotypes",), ("ops",), ("settings", "precision", "distributed", "fileio"), ("errors",)]


def test_every_import_goes_down_the_layers():
    graph = import_graph()
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    top = lambda m: m.split(".")[1]
    assert {top(m) for m in graph if m != "darts_nas"} == set(rank), "a package is missing from LAYERS"
    for module, deps in graph.items():
        if module == "darts_nas":  # the package's own __init__ re-exports the model zoo
            continue
        up = [d for d in deps if top(d) != top(module) and rank[top(d)] <= rank[top(module)]]
        assert not up, f"{module} imports {up}, which is not below it"
    # and the checker sees a violation: the reader finds run.dispatch's import of run.rl, a sibling of its own
    assert "darts_nas.run.rl" in graph["darts_nas.run.dispatch"] and rank["run"] < rank["rl"]


# -- a run's config.json given back, and any strategy in the bench ---------------------------------------------
def test_a_runs_config_repeats_it_with_flags_overriding(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    flags = ["--space", "nb201", "--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "8",
             "--channels", "4", "--cells-per-stage", "1", "--batch-size", "16", "--epochs", "1",
             "--strategy", "single-level", "--relaxation", "sigmoid", "--lr", "0.005", "--no-progress"]
    assert main(["search", *flags, "--out", str(first)]) == 0
    recorded = json.loads((first / "config.json").read_text())
    assert main(["search", "--config", str(first / "config.json"), "--seed", "7", "--out", str(second)]) == 0
    assert f"settings from {first / 'config.json'}" in capsys.readouterr().out
    repeated = json.loads((second / "config.json").read_text())
    assert repeated == {**recorded, "seed": 7, "out": str(second)}
    # the same seed gives the same search, bit for bit
    third = tmp_path / "third"
    assert main(["search", "--config", str(first / "config.json"), "--out", str(third)]) == 0
    strip = lambda d: [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                       for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert strip(third) == strip(first)
    capsys.readouterr()
    assert main(["search", "--config", str(first / "config.json"), "--preset", "darts-nb201"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["train", "--config", str(first / "config.json")]) == 2
    assert "not a training config (unknown settings:" in capsys.readouterr().err
    assert main(["search", "--config", str(tmp_path / "missing.json")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_bench_times_any_registered_strategy():
    from darts_nas.bench import measure_search_step

    for strategy in ("single-level", "implicit"):
        r = measure_search_step("cpu", batch_size=4, channels=4, layers=3, order=2, hvp="exact", steps=1, warmup=0,
                                strategy=strategy)
        assert r["strategy"] == strategy and r["median_s"] > 0
