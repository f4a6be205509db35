"""Pictures, reports, comparisons, TensorBoard and export: the drawings read back (SVG ids, line data) against the
genotypes and metrics.jsonl they come from, compare's statistics by hand, TensorBoard's own reader, the exported
files run by onnxruntime and torch.jit against PyTorch, and the one-line messages when an extra is missing."""

from __future__ import annotations

import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from darts_nas.cli import main
from darts_nas.genotypes import NB201Arch, load_genotype
from darts_nas.genotypes.rnn import load_recurrent_genotype

sys.path.insert(0, str(Path(__file__).parent))
from test_nb201 import write_fake_table  # noqa: E402

NB_ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_1x1~1|avg_pool_3x3~2|"
from conftest import CLI_TINY as TINY, copy_run  # noqa: E402


def svg_ids(path: Path) -> list[str]:
    return [el.get("id") for el in ET.parse(path).iter() if el.get("id")]


def drawn(path: Path) -> tuple[set, list]:
    """(nodes, edges) as the SVG holds them: node|CELL|NODE and edge|CELL|FROM|TO|OP ids."""
    ids = svg_ids(path)
    nodes = {tuple(i.split("|")[1:]) for i in ids if i.startswith("node|")}
    edges = sorted(tuple(i.split("|")[1:]) for i in ids if i.startswith("edge|"))
    return nodes, edges


# ----------------------------------------------------------------------------------------------------------------
# cell diagrams
# ----------------------------------------------------------------------------------------------------------------
def test_cnn_diagram_draws_exactly_the_genotypes_edges(tmp_path, capsys):
    assert main(["plot", "DARTS_V2", "--out", str(tmp_path), "--dot"]) == 0
    assert "wrote 4 files" in capsys.readouterr().out
    g = load_genotype("DARTS_V2")
    nodes, edges = drawn(tmp_path / "DARTS_V2.svg")
    expected_edges = []
    for cell, pairs, concat in (("normal", g.normal, g.normal_concat), ("reduce", g.reduce, g.reduce_concat)):
        name = {0: "c_{k-2}", 1: "c_{k-1}"}
        for i, (op, j) in enumerate(pairs):  # two inputs per node, in order
            expected_edges.append((cell, name.get(j, str(j - 2)), str(i // 2), op))
        expected_edges += [(cell, name.get(k, str(k - 2)), "c_{k}", "") for k in concat]
        assert {n for c, n in nodes if c == cell} == {"c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"}
    assert edges == sorted(expected_edges)
    dot = (tmp_path / "DARTS_V2-normal.dot").read_text()
    assert dot.count("->") == 8 + 4 and '"c_{k-1}" -> "0" [label="sep_conv_3x3"];' in dot
    assert (tmp_path / "DARTS_V2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recurrent_and_nb201_diagrams(tmp_path):
    from darts_nas.plots.cells import save_cell

    rnn = load_recurrent_genotype("DARTS_V2")
    save_cell(rnn, tmp_path / "rnn", formats=("svg",))
    nodes, edges = drawn(tmp_path / "rnn.svg")
    assert {n for _, n in nodes} == {"x_{t}", "h_{t-1}", "h_{t}", *map(str, range(9))}
    ops = sorted(("recurrent", str(j), str(i + 1), op) for i, (op, j) in enumerate(rnn.recurrent))
    assert sorted(e for e in edges if e[3]) == ops
    assert sorted(e[1] for e in edges if e[2] == "h_{t}") == sorted(map(str, rnn.concat))

    arch = NB201Arch.from_text(NB_ARCH)
    save_cell(arch, tmp_path / "nb", formats=("svg",))
    nodes, edges = drawn(tmp_path / "nb.svg")
    # NB201_EDGES are (to, from); `none` is no connection.
    expected = sorted([("cell", "0", "1", "nor_conv_3x3"), ("cell", "1", "2", "skip_connect"),
                       ("cell", "0", "3", "nor_conv_3x3"), ("cell", "1", "3", "nor_conv_1x1"),
                       ("cell", "2", "3", "avg_pool_3x3")])
    assert edges == expected and {n for _, n in nodes} == {"0", "1", "2", "3"}


# ----------------------------------------------------------------------------------------------------------------
# a run's pictures and report
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory):
    """A 3-epoch NB201 search with the benchmark table (fake values), the Hessian signal and TensorBoard."""
    root = tmp_path_factory.mktemp("runs")
    table = write_fake_table(root / "table.csv")
    assert main(["search", "--preset", "darts-nb201", *TINY, "--cells-per-stage", "1", "--epochs", "3",
                 "--nb201-table", str(table), "--hessian-every", "1", "--hessian-iters", "2", "--tensorboard",
                 "--out", str(root / "nb")]) == 0
    return root / "nb"


def history_of(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_trajectories_signals_and_curves_hold_the_metrics_values(nb201_run):
    from darts_nas.plots.curves import alpha_figure, curves_figure, signals_figure

    history = history_of(nb201_run)
    primitives = history[-1]["primitives"]
    fig = alpha_figure(history)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines}
    assert len(lines) == 6 * len(primitives)  # every op of every edge
    for e in range(6):
        for k, op in enumerate(primitives):
            line = lines[f"alpha|cell|{e}|{op}"]
            assert list(line.get_xdata()) == [1, 2, 3]
            assert list(line.get_ydata()) == [r["op_weights"]["cell"][e][k] for r in history]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:3] == ["cell: 0->1", "cell: 0->2", "cell: 1->2"]

    lines = {ln.get_gid(): ln for ax in signals_figure(history).axes for ln in ax.lines}
    assert list(lines["signal|param_free_ops"].get_ydata()) == [r["param_free_ops"] for r in history]
    assert list(lines["signal|hessian_eigenvalue"].get_ydata()) == [r["hessian_eigenvalue"] for r in history]
    assert list(lines["signal|nb201/cifar100"].get_ydata()) == [r["nb201"]["cifar100_test_acc"] for r in history]

    lines = {ln.get_gid(): ln for ax in curves_figure(history).axes for ln in ax.lines}
    assert list(lines["curve|val_loss"].get_ydata()) == [r["val_loss"] for r in history]
    assert list(lines["curve|train_acc"].get_ydata()) == [100 * r["train_acc"] for r in history]
    assert list(lines["curve|lr"].get_ydata()) == [r["lr"] for r in history]


def test_plot_and_report_of_a_run(nb201_run, tmp_path, capsys):
    nb201_run = copy_run(nb201_run, tmp_path)  # the pictures and the report go into a copy
    assert main(["plot", str(nb201_run), "--format", "png"]) == 0
    assert sorted(p.name for p in (nb201_run / "plots").iterdir()) == ["alphas.png", "cell.png", "curves.png",
                                                                       "signals.png"]
    assert main(["report", str(nb201_run)]) == 0
    page = (nb201_run / "report.html").read_text()

    class Images(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.open = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.images.append(dict(attrs))

    parser = Images()
    parser.feed(page)
    assert [i["alt"] for i in parser.images] == ["cell", "alphas", "signals", "curves"]
    assert all(i["src"].startswith("data:image/png;base64,") for i in parser.images)  # self-contained
    genotype = history_of(nb201_run)[-1]["genotype"]
    assert genotype in page and "cifar10_test_acc" in page and "hessian_every" in page


# ----------------------------------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------------------------------
def fake_run(root: Path, name: str, seed: int, strategy: str, accs, free: int, seconds: float):
    from darts_nas.config import preset_config

    run = root / name
    run.mkdir()
    config = preset_config("darts-nb201", seed=seed, strategy=strategy, out=str(run), data="/data",
                           split_file="/x/cifar-split.txt").to_dict()
    (run / "config.json").write_text(json.dumps(config))
    records = [{"epoch": 1, "val_acc": 0.2, "seconds": seconds / 2, "genotype": NB_ARCH, "param_free_ops": 9,
                "nb201": {"cifar10_test_acc": 10.0}},
               {"epoch": 2, "val_acc": 0.3, "seconds": seconds / 2, "genotype": NB_ARCH, "param_free_ops": free,
                "nb201": {"cifar10_test_acc": accs[0], "cifar100_test_acc": accs[1],
                          "imagenet16-120_test_acc": accs[2]}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_compare_gives_mean_and_sample_std_per_method(tmp_path, capsys):
    a = [fake_run(tmp_path, f"darts-{s}", s, "bilevel", (80 + s, 50 + 2 * s, 30.5), s, 600) for s in (0, 1, 5)]
    b = [fake_run(tmp_path, f"single-{s}", s, "single-level", (93.0 + s / 10, 70, 40), 0, 900) for s in (0, 1)]
    out = tmp_path / "c.json"
    assert main(["compare", *map(str, a + b), "--json", str(out), "--plot", str(tmp_path / "c.png")]) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    darts, single = result["methods"]
    assert (darts["runs"], single["runs"]) == (3, 2) and darts["seeds"] == [0, 1, 5]
    assert darts["searched"] == ["cifar10 (cifar-split.txt)"]  # the protocol: what was searched, with which split
    by_hand = [80.0, 81.0, 85.0]
    mean = sum(by_hand) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in by_hand) / 2)
    assert darts["nb201_cifar10"]["mean"] == pytest.approx(mean) and darts["nb201_cifar10"]["std"] == pytest.approx(std)
    assert darts["nb201_imagenet16-120"] == {"mean": 30.5, "std": 0.0}
    assert darts["param_free_ops"]["mean"] == pytest.approx(2.0)
    assert single["nb201_cifar10"]["std"] == pytest.approx(math.sqrt(((93.0 - 93.05) ** 2 + (93.1 - 93.05) ** 2)))
    assert single["search_seconds"] == {"mean": 900.0, "std": 0.0}
    assert f"{mean:.2f} +- {std:.2f}" in text and "single-level" in text
    assert (tmp_path / "c.png").is_file()


# ----------------------------------------------------------------------------------------------------------------
# TensorBoard
# ----------------------------------------------------------------------------------------------------------------
def test_tensorboard_events_hold_the_logged_values(nb201_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(nb201_run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    history = history_of(nb201_run)
    tags = acc.Tags()
    for key in ("train_loss", "val_acc", "lr", "hessian_eigenvalue", "param_free_ops"):
        events = acc.Scalars(f"epoch/{key}")
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([r[key] for r in history], rel=1e-6)
    assert [e.value for e in acc.Scalars("nb201/cifar10_test_acc")] == \
        pytest.approx([r["nb201"]["cifar10_test_acc"] for r in history])
    conv = history[-1]["primitives"].index("nor_conv_3x3")
    events = acc.Scalars("op_weights/cell/1->2/nor_conv_3x3")
    assert [e.value for e in events] == pytest.approx([r["op_weights"]["cell"][2][conv] for r in history], rel=1e-6)
    assert len([t for t in tags["scalars"] if t.startswith("op_weights/")]) == 6 * 5
    assert [e.step for e in acc.Images("cell")] == [1, 2, 3]


# ----------------------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(trained_run, lm_run):
    """The session's trained runs: img (an image network, with TensorBoard) and lm (a language model)."""
    assert trained_run.name == "img" and lm_run.name == "lm"
    return SimpleNamespace(img=trained_run, lm=lm_run)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_image_network_gives_pytorchs_logits(trained, fmt, tmp_path, capsys):
    from darts_nas.run.train import load_network

    out = tmp_path / f"net.{fmt}"
    assert main(["export", str(trained.img / "last.pt"), "--format", fmt, "--out", str(out)]) == 0
    assert "gives PyTorch's outputs to" in capsys.readouterr().out
    model, _ = load_network(trained.img / "last.pt")
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model.eval()(x)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    else:
        got = torch.jit.load(str(out))(x)
    assert (got - expected).abs().max() < 1e-5


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_language_model_gives_pytorchs_outputs(trained, fmt, tmp_path):
    from darts_nas.run.lm import load_lm

    out = tmp_path / f"lm.{fmt}"
    assert main(["export", str(trained.lm), "--format", fmt, "--out", str(out), "--steps", "5"]) == 0
    model, _ = load_lm(trained.lm)
    model.eval()
    g = torch.Generator().manual_seed(3)
    tokens, hidden = torch.randint(0, model.vocab_size, (5, 4), generator=g), torch.randn(4, 8, generator=g)
    with torch.no_grad():
        logits, last, _, _ = model(tokens, hidden)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = [torch.from_numpy(t) for t in session.run(None, {"tokens": tokens.numpy(), "hidden": hidden.numpy()})]
    else:
        got = torch.jit.load(str(out))(tokens, hidden)
    assert (got[0] - logits).abs().max() < 1e-5 and (got[1] - last).abs().max() < 1e-5


def test_training_runs_plot_and_log_to_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from darts_nas.plots.run import run_figures

    history = history_of(trained.img)
    figures = run_figures(trained.img)
    assert sorted(figures) == ["cell", "curves"]  # no alphas or signals in a training run
    lines = {ln.get_gid(): ln for ax in figures["curves"].axes for ln in ax.lines}
    assert list(lines["curve|test_acc"].get_ydata()) == [100 * r["test_acc"] for r in history]
    acc = EventAccumulator(str(trained.img / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert [e.value for e in acc.Scalars("epoch/test_loss")] == pytest.approx([r["test_loss"] for r in history])
    assert [e.step for e in acc.Images("cell")] == [1]  # the trained cell does not change: drawn once
    lm = run_figures(trained.lm)  # the recurrent cell and the perplexities
    assert sorted(lm) == ["cell", "curves"]
    assert "curve|val_ppl" in {ln.get_gid() for ax in lm["curves"].axes for ln in ax.lines}


def test_exported_imagenet_network_gives_pytorchs_logits(tmp_path):
    from darts_nas.config import TrainConfig
    from darts_nas.nets import NetworkImageNet
    from darts_nas.run.checkpoint import MODEL_KIND, save_checkpoint

    torch.manual_seed(0)
    net = NetworkImageNet(load_genotype("DARTS_V2"), C=8, num_classes=5, layers=3, auxiliary=True).eval()
    config = TrainConfig(dataset="imagenet", image_size=64, channels=8, layers=3).to_dict()
    save_checkpoint(tmp_path / "best.pt", {"kind": MODEL_KIND, "version": 1, "model_hparams": net.hparams,
                                           "model": net.state_dict(), "epoch": 1, "metrics": {}, "config": config,
                                           "data": {"mean": [0.5] * 3, "std": [0.25] * 3, "classes": list("abcde")}})
    assert main(["export", str(tmp_path / "best.pt"), "--format", "onnx"]) == 0
    import onnxruntime

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(str(tmp_path / "best.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = net(x)
    assert (torch.from_numpy(session.run(None, {"images": x.numpy()})[0]) - expected).abs().max() < 1e-5


# ----------------------------------------------------------------------------------------------------------------
# missing extras
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module,argv,line", [
    ("matplotlib", ["plot", "DARTS_V2"], "drawing needs matplotlib, which is not installed: pip install "
                                         "'darts-nas[plot]'"),
    ("tensorboard", ["search", *TINY, "--epochs", "1", "--tensorboard"],
     "--tensorboard needs tensorboard, which is not installed: pip install 'darts-nas[tensorboard]'"),
    ("onnxscript", ["export", "RUN", "--format", "onnx"], "ONNX export needs onnxscript, which is not installed: pip "
                                                          "install 'darts-nas[export]'"),
])
def test_a_missing_extra_gives_one_line(module, argv, line, monkeypatch, tmp_path, capsys, trained):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails, as when it is not installed
    argv = [str(trained.img) if a == "RUN" else a for a in argv] + \
        (["--out", str(tmp_path / "x")] if argv[0] in ("search", "plot") else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"darts-nas: error: {line}"]
    assert not re.search("Traceback", "\n".join(err))
