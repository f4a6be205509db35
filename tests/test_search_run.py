"""The search run loop and the command line: run directory, resume, NaN handling, errors."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from darts_nas.cli import main
from darts_nas.config import preset_config
from darts_nas.genotypes import Genotype, derive_genotype, load_genotype
from darts_nas.run import resume_search, start_search
from darts_nas.run.search import NonFiniteLoss, SearchRun, cosine_lr

from conftest import quiet, tiny_search as tiny  # noqa: E402


def final_state(run: SearchRun):
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def strip_times(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_cosine_schedule_is_the_papers():
    for e in (0, 1, 17, 25, 49):
        assert cosine_lr(e, 50, 0.025, 0.001) == pytest.approx(0.001 + 0.012 * (1 + math.cos(math.pi * e / 50)))
    assert cosine_lr(0, 50, 0.025, 0.001) == pytest.approx(0.025)


def test_presets_hold_the_papers_values():
    c = preset_config("darts-cifar10")
    assert (c.epochs, c.batch_size, c.lr, c.lr_min, c.momentum, c.weight_decay, c.grad_clip) == \
        (50, 64, 0.025, 0.001, 0.9, 3e-4, 5.0)
    assert (c.arch_lr, c.arch_beta1, c.arch_beta2, c.arch_weight_decay) == (3e-4, 0.5, 0.999, 1e-3)
    assert (c.channels, c.layers, c.nodes, c.train_portion, c.cutout, c.order) == (16, 8, 4, 0.5, 0, 1)
    c2 = preset_config("darts-cifar10-2nd", batch_size=32)
    assert (c2.order, c2.hvp, c2.fd_r, c2.batch_size) == (2, "finite-difference", 0.01, 32)
    pc = preset_config("pc-darts-cifar10")
    assert (pc.partial_channels, pc.edge_normalization, pc.batch_size, pc.lr, pc.lr_min, pc.arch_lr,
            pc.arch_warmup_epochs, pc.epochs, pc.order) == (4, True, 256, 0.1, 0.0, 6e-4, 15, 50, 1)
    assert c.arch_warmup_epochs == 0 and not c.fuse_ops and not c.cuda_graphs and c.precision == "fp32"


def test_arch_warmup_epochs_train_the_weights_only(tmp_path):
    run = start_search(tiny(epochs=2, arch_warmup_epochs=1, edge_normalization=True), tmp_path / "r", echo=quiet)
    initial = [a.detach().clone() for a in run.model.arch_parameters()]
    weights = [w.detach().clone() for w in run.model.weight_parameters()]
    run.run(stop_after=1)
    assert all(torch.equal(a, b) for a, b in zip(run.model.arch_parameters(), initial))
    assert not any(torch.equal(a, b) for a, b in zip(run.model.weight_parameters()[:1], weights[:1]))
    assert len(run.a_opt.state) == 0
    run.run()
    assert all(not torch.equal(a, b) for a, b in zip(run.model.arch_parameters(), initial))


def test_run_directory_contents(search_run):
    d, result = search_run.dir, search_run.result  # tiny(epochs=2), finished
    assert result.finished and result.epochs_done == 2
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "alphas.json", "genotype.json", "genotype.txt"):
        assert (d / name).is_file(), name
    config = json.loads((d / "config.json").read_text())
    assert config["epochs"] == 2 and config["dataset"] == "synthetic"
    lines = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for r in lines:
        assert {"lr", "train_loss", "train_acc", "val_loss", "val_acc", "genotype", "alphas", "op_weights"} <= set(r)
        assert len(r["alphas"]["normal"]) == 5 and len(r["alphas"]["normal"][0]) == 8
    assert lines[0]["lr"] == pytest.approx(0.025) and lines[1]["lr"] == pytest.approx(0.013)
    # the checkpoint loads with weights_only=True and its alphas derive the saved genotype
    state = torch.load(d / "checkpoint.pt", weights_only=True)
    expected = derive_genotype(torch.softmax(state["model"]["alphas.normal"], -1),
                               torch.softmax(state["model"]["alphas.reduce"], -1), steps=2)
    assert load_genotype(str(d)) == expected == Genotype.from_text((d / "genotype.txt").read_text())
    alphas = json.loads((d / "alphas.json").read_text())
    assert torch.allclose(torch.tensor(alphas["alphas"]["reduce"]), state["model"]["alphas.reduce"])


def test_resume_matches_an_uninterrupted_run_exactly(tmp_path):
    full = start_search(tiny(), tmp_path / "full", echo=quiet)
    full.run()
    part = start_search(tiny(), tmp_path / "part", echo=quiet)
    stopped = part.run(stop_after=1)
    assert not stopped.finished and stopped.epochs_done == 1
    del part
    resumed = resume_search(tmp_path / "part", echo=quiet)
    assert resumed.epoch == 1
    result = resumed.run()
    assert result.finished
    a, b = final_state(full), final_state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert strip_times(full.history) == strip_times(resumed.history)
    for opt in ("w_opt", "a_opt"):
        sa, sb = getattr(full, opt).state_dict()["state"], getattr(resumed, opt).state_dict()["state"]
        for i in sa:
            for key in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][key]), torch.as_tensor(sb[i][key]))


def test_second_order_search_runs_and_is_reproducible(tmp_path):
    kw = dict(order=2, hvp="exact", epochs=1, hessian_every=0)  # the signal's reproducibility: the resume tests
    r1 = start_search(tiny(**kw), tmp_path / "a", echo=quiet)
    r1.run()
    r2 = start_search(tiny(**kw), tmp_path / "b", echo=quiet)
    r2.run()
    assert all(torch.equal(x, y) for x, y in zip(final_state(r1).values(), final_state(r2).values()))
    r3 = start_search(tiny(seed=3, **kw), tmp_path / "c", echo=quiet)
    r3.run()
    assert not torch.equal(final_state(r1)["alphas.normal"], final_state(r3)["alphas.normal"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run = start_search(tiny(epochs=3), tmp_path / "run", echo=quiet)
    real_step = run.strategy.step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, logits, val_out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > run.steps:  # every step of the second epoch
            loss = loss * float("nan")
        return loss, logits, val_out

    monkeypatch.setattr(run.strategy, "step", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"nan in epoch 2.*last good checkpoint \(epoch 1\)"):
        run.run()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_cli_search_derive_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "8", "--channels", "4",
            "--layers", "3", "--nodes", "2", "--batch-size", "16", "--epochs", "2", "--no-progress", "--out", str(out)]
    assert main(args + ["--stop-after", "1"]) == 0
    assert "--resume" in capsys.readouterr().out
    assert main(["search", "--resume", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed and "derived cell" in printed
    assert "normal op weights, mean over edges: none 0.1" in printed
    assert main(["derive", str(out)]) == 0
    derived = capsys.readouterr().out.strip().splitlines()[-1]
    assert Genotype.from_text(derived) == load_genotype(str(out))
    assert main(["derive", str(out / "checkpoint.pt"), "--json"]) == 0
    assert Genotype.from_dict(json.loads(capsys.readouterr().out)) == load_genotype(str(out))
    assert main(["derive", str(out), "--alphas"]) == 0
    table = capsys.readouterr().out
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    first_row = [float(v) for v in table.split("normal cell, softmax(alpha):")[1].splitlines()[2].split()[1:]]
    assert first_row == pytest.approx(torch.softmax(state["model"]["alphas.normal"][0], -1).tolist(), abs=1e-4)


def test_cli_genotypes(capsys):
    assert main(["genotypes"]) == 0
    listing = capsys.readouterr().out
    assert "DARTS_V2" in listing and "AmoebaNet" in listing
    assert main(["genotypes", "darts_v2"]) == 0
    assert "('dil_conv_3x3', 2)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["genotypes", "NoSuchNet"], "DARTS_V2"),
    (["derive", "/nonexistent/run"], "no checkpoint"),
    (["search", "--dataset", "cifar10", "--data", "{tmp}/nothing", "--no-download", "--no-progress"],
     "data_batch_1"),
    (["search", "--dataset", "synthetic", "--synthetic-size", "16", "--batch-size", "64", "--out", "{tmp}/r"],
     "no full batch"),
    (["search", "--dataset", "synthetic", "--device", "cuda:7", "--out", "{tmp}/r"] if not torch.cuda.is_available()
     else ["search", "--channels", "0"], "CUDA is not available" if not torch.cuda.is_available() else "positive"),
    (["search", "--epochs", "0"], "--epochs must be positive"),
    (["search", "--resume", "{tmp}/none"], "no such run directory"),
])
def test_cli_bad_input_gives_one_clear_message(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("darts-nas: error:")


def test_cli_refuses_to_overwrite_or_change_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["search", "--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "8", "--channels", "4",
            "--layers", "3", "--nodes", "2", "--batch-size", "16", "--epochs", "2", "--no-progress", "--out", out]
    assert main(base + ["--stop-after", "1"]) == 0
    capsys.readouterr()
    assert main(base) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["search", "--resume", out, "--lr", "0.1"]) == 2
    assert "--lr" in capsys.readouterr().err


def test_corrupt_checkpoint_is_reported_not_raised(tmp_path, capsys):
    d = tmp_path / "run"
    d.mkdir()
    (d / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["derive", str(d)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert main(["search", "--resume", str(d)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err


def test_diverging_run_exits_nonzero_without_traceback(tmp_path):
    """A real divergence (absurd learning rate) through the installed command."""
    cmd = [sys.executable, "-m", "darts_nas.cli", "search", "--dataset", "synthetic", "--synthetic-size", "64",
           "--channels", "4", "--layers", "3", "--nodes", "2", "--batch-size", "16", "--epochs", "3",
           "--lr", "1e30", "--grad-clip", "0", "--log-every", "1", "--no-progress", "--out", str(tmp_path / "r")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert "loss became" in proc.stderr and "Traceback" not in proc.stderr


def test_search_with_every_speed_and_pc_darts_option(tmp_path):
    """PC-DARTS partial channels and edge normalization, fused ops and cell checkpointing in one run: the betas
    are logged, the run resumes, and the fast settings do not change the result of the plain run."""
    opts = dict(partial_channels=2, edge_normalization=True, epochs=2)
    fast = start_search(tiny(**opts, fuse_ops=True, checkpoint_cells=True), tmp_path / "fast", echo=quiet).run()
    plain = start_search(tiny(**opts), tmp_path / "plain", echo=quiet).run()
    alphas = json.loads((tmp_path / "fast" / "alphas.json").read_text())
    assert set(alphas["betas"]) == {"normal", "reduce"} and len(alphas["edge_weights"]["normal"]) == 5
    for a, b in zip(fast.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert fast.genotype == plain.genotype


def test_bench_search_smoke(capsys):
    assert main(["bench", "search", "--batch-size", "4", "--channels", "4", "--layers", "3", "--steps", "1",
                 "--warmup", "0", "--order", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "s/step" in out and "second (finite-difference)" in out


def test_cli_search_on_an_image_folder(tmp_path, capsys):
    """A user's own data: root/<class>/<image>, images of any size, resized on load."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(("cats", "dogs")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(16):
            pixels = (torch.rand(20, 24, 3, generator=g) * 80 + 120 * c).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "run"
    assert main(["search", "--dataset", "folder", "--data", str(tmp_path / "data"), "--image-size", "16",
                 "--channels", "4", "--layers", "3", "--nodes", "2", "--batch-size", "8", "--epochs", "1",
                 "--no-progress", "--out", str(out)]) == 0
    assert "32 images, 16 for weights / 16 for alphas" in capsys.readouterr().out
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["model_hparams"]["num_classes"] == 2
    assert load_genotype(str(out)).normal_concat == (2, 3)


def test_folder_split_keeps_every_class_on_both_sides(tmp_path):
    from PIL import Image

    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        for i in range(8):
            Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(tmp_path / name / f"{i}.png")
    run = start_search(tiny(dataset="folder", data=str(tmp_path), image_size=8, batch_size=4), tmp_path / "r",
                       echo=quiet)
    for loader in (run.train_loader, run.val_loader):
        assert set(loader.labels.tolist()) == {0, 1, 2}


def test_checkpoint_of_another_kind_is_refused(tmp_path, capsys):
    from darts_nas.run.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "checkpoint.pt", {"kind": "darts-nas/train", "epoch": 3})
    assert main(["derive", str(tmp_path)]) == 2
    assert "not a 'darts-nas/search'" in capsys.readouterr().err
    assert main(["search", "--resume", str(tmp_path)]) == 2
    assert "not a 'darts-nas/search'" in capsys.readouterr().err
