"""Inputs a user gets wrong, on every command: each ends in one `darts-nas: error:` line and a non-zero status,
never a traceback, and leaves an existing run's files as they were. Also what a run records of how it was
launched (world size, per-rank batch), with a faked world size."""

from __future__ import annotations

import hashlib
import json

import pytest

from darts_nas import distributed
from darts_nas.cli import main

TINY = ["--dataset", "synthetic", "--synthetic-size", "16", "--batch-size", "8", "--channels", "4", "--layers", "3",
        "--nodes", "2", "--image-size", "8", "--hessian-every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """A finished tiny search run, an empty directory, junk bytes named .pt, JSON that is no config."""
    root = tmp_path_factory.mktemp("bad")
    assert main(["search", *TINY, "--epochs", "1", "--out", str(root / "run")]) == 0
    (root / "empty").mkdir()
    (root / "junk.pt").write_bytes(bytes(range(256)) * 3)
    (root / "notcfg.json").write_text('{"foo": 1}')
    (root / "bad.json").write_text("not json {")
    (root / "list.json").write_text("[1, 2]")
    (root / "bad.csv").write_text("index,arch_str\n1,2\n")
    return root


def hashes(run) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


R, E, J, N = "{run}", "{empty}", "{junk}", "{missing}"
CASES = [
    # search
    ["search", *TINY, "--image-size", "30", "--epochs", "1"],
    ["search", *TINY, "--space", "nb201", "--image-size", "10", "--epochs", "1"],
    ["search", *TINY, "--space", "unas-darts", "--image-size", "6", "--epochs", "1"],
    ["search", *TINY, "--epochs", "0"],
    ["search", *TINY, "--batch-size", "-1"],
    ["search", *TINY, "--image-size", "0"],
    ["search", *TINY, "--train-portion", "2"],
    ["search", "--resume", E], ["search", "--resume", N], ["search", "--resume", J],
    ["search", "--resume", R, "--stop-after", "-1"],
    ["search", "--resume", R, "--preset", "darts-cifar10"],
    ["search", "--config", N], ["search", "--config", "{root}/notcfg.json"], ["search", "--config", "{root}/bad.json"],
    ["search", "--config", "{root}/list.json"], ["search", "--config", J],
    # train, evaluate, export
    ["train", "--dataset", "synthetic", "--image-size", "30"],
    ["train", "--dataset", "synthetic", "--epochs", "-1"],
    ["train", "--resume", R], ["train", "--resume", E],
    ["train", "--genotype", J, "--dataset", "synthetic"], ["train", "--genotype", "no_such_cell"],
    ["train", "--genotype", "{run}/config.json", "--dataset", "synthetic"],
    ["evaluate", E], ["evaluate", N], ["evaluate", J], ["evaluate", R],
    ["export", R, "--format", "onnx"], ["export", J, "--format", "onnx"], ["export", E, "--format", "torchscript"],
    # derive, plot, report, compare
    ["derive", E], ["derive", N], ["derive", J], ["derive", "{run}/config.json"],
    ["plot", E], ["plot", N], ["plot", J], ["plot", "(("],
    ["plot", R, "--out", "{run}/genotype.txt"],
    ["report", E], ["report", N], ["report", J], ["report", R, E], ["report", R, "--out", R],
    ["compare", E], ["compare", N], ["compare", J], ["compare", R, E], ["compare", R, "--plot", "{root}/c.xyz"],
    ["compare", R, "--json", E], ["compare", "{run}/config.json"],
    # info, genotypes, nb201
    ["info", J], ["info", "no_such_cell"], ["info", E], ["info", "(("],
    ["info", "DARTS_V2", "--image-size", "30"], ["info", "DARTS_V2", "--image-size", "0"],
    ["info", "DARTS_V2", "--channels", "0"], ["info", "DARTS_V2", "--units", "0"],
    ["info", "DARTS_V2", "--latency", "--repeats", "0"],
    ["genotypes", "no_such_cell"],
    ["nb201", "lookup", R, "--table", N], ["nb201", "lookup", R, "--table", J],
    ["nb201", "lookup", "junk", "--table", "{root}/bad.csv"],
    # latency-table, bench
    ["latency-table", "--samples", "0"], ["latency-table", "--ridge", "-1"], ["latency-table", "--table", E],
    ["bench", "search", "--steps", "0"], ["bench", "search", "--batch-size", "0"], ["bench", "search", "--nproc", "0"],
    ["bench", "search", "--channels", "0"], ["bench", "hypergradient", "--run", E], ["bench", "hypergradient"],
    ["bench", "reversible", "--depths", "a,b"],
    # rl
    ["rl", "evaluate", R], ["rl", "evaluate", E], ["rl", "train", "--genotype", J], ["rl", "search", "--resume", R],
]


def fill(args, root) -> list[str]:
    names = dict(root=root, run=root / "run", empty=root / "empty", junk=root / "junk.pt", missing=root / "missing")
    return [a.format(**names) for a in args]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a)[:60])
def test_bad_input_is_one_line_and_changes_no_run(fixtures, args, capsys, monkeypatch):
    monkeypatch.chdir(fixtures)
    before = hashes(fixtures / "run")
    rc = main(fill(args, fixtures))
    err = capsys.readouterr().err
    assert rc != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("darts-nas: error:"), err
    assert "Traceback" not in err
    assert hashes(fixtures / "run") == before


# -- a distributed run says how it was run ------------------------------------------------------------------------
def test_config_records_the_launch_and_a_resume_on_other_ranks_says_so(tmp_path, capsys, monkeypatch):
    run = tmp_path / "ws"
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # a 2-rank launch, as rank 0 sees it
    assert main(["search", *TINY, "--epochs", "2", "--out", str(run), "--stop-after", "1"]) == 0
    launch = json.loads((run / "config.json").read_text())["launch"]
    assert launch == {"world_size": 2, "per_rank_batch": 4, "global_batch": 8,
                      "launches": [{"epoch": 0, "world_size": 2, "per_rank_batch": 4, "global_batch": 8}]}
    monkeypatch.setattr(distributed, "world_size", lambda: 1)
    capsys.readouterr()
    assert main(["search", "--resume", str(run)]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "ran on" in line]
    assert said == ["resuming on 1 process, batch 8 after epoch 1; the epochs before ran on 2 ranks x batch 4 "
                    "(global 8) (the same global batch; BatchNorm's per-rank batches differ)"]
    launch = json.loads((run / "config.json").read_text())["launch"]
    assert (launch["world_size"], [e["world_size"] for e in launch["launches"]]) == (1, [2, 1])

    assert main(["compare", str(run)]) == 0
    assert "1 process, batch 8; before: from epoch 0 on 2 ranks x batch 4 (global 8)" in capsys.readouterr().out
    assert main(["report", str(run)]) == 0
    assert "1 process, batch 8; before: from epoch 0 on 2 ranks x batch 4 (global 8)" in \
        (run / "report.html").read_text()
    # the settings still read back: --config skips the launch
    assert main(["search", "--config", str(run / "config.json"), "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
