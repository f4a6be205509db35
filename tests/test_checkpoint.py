"""A checkpoint that cannot be read safely is refused in one line that says what the file is and what was
expected, and never advises turning safe loading (weights_only) off."""

from __future__ import annotations

import argparse

import pytest
import torch

from darts_nas.cli import main
from darts_nas.errors import DartsNasError
from darts_nas.run.checkpoint import load_checkpoint


def _refusal(path) -> str:
    with pytest.raises(DartsNasError) as info:
        load_checkpoint(path)
    return str(info.value)


def test_unsafe_truncated_and_foreign_files_are_refused_without_unsafe_advice(tmp_path, capsys):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"kind": "darts-nas/search", "args": argparse.Namespace(lr=0.1)}, unsafe)  # an arbitrary object
    msg = _refusal(unsafe)
    assert "holds objects other than tensors" in msg and "expected a darts-nas checkpoint" in msg
    assert "weights_only" not in msg and "trust" not in msg.lower()

    good = tmp_path / "good.pt"
    torch.save({"kind": "darts-nas/search", "w": torch.ones(1000)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    msg = _refusal(truncated)
    assert "truncated or not a PyTorch file" in msg and "weights_only" not in msg

    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert "weights_only" not in _refusal(text)
    assert load_checkpoint(good)["w"].sum() == 1000  # a good file still loads

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(unsafe.read_bytes())
    assert main(["derive", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read checkpoint" in err and "weights_only" not in err
