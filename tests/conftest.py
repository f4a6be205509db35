"""What many test files share: the tiny settings of searches and trainings, and runs made once per session that
several tests read (a finished search, a trained image network, a trained language model).

A session run is read, never changed: a test that writes into one (plots, a report, a resume) copies it into its
own tmp_path first (`copy_run`)."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def quiet(*_args, **_kwargs):
    """An echo that prints nothing."""


# -- tiny settings ----------------------------------------------------------------------------------------------
# A DARTS-CNN search: 48 images of 8x8 for the weights, 48 for the alphas, 3 steps an epoch.
SEARCH_TINY = dict(dataset="synthetic", synthetic_size=96, image_size=8, channels=4, layers=3, nodes=2, batch_size=16,
                   epochs=3, progress=False, device="cpu", log_every=2)
# Training from scratch: 64 images at 16x16 (16 test images).
TRAIN_TINY = dict(dataset="synthetic", synthetic_size=64, image_size=16, channels=4, layers=3, batch_size=16, epochs=3,
                  progress=False, device="cpu", log_every=2, cutout=4)
# A NAS-Bench-201 search at 8x8.
NB201_TINY = dict(dataset="synthetic", synthetic_size=64, image_size=8, space="nb201", channels=4, cells_per_stage=1,
                  batch_size=16, epochs=2, device="cpu", progress=False, hessian_iters=4, seed=1)
# The same sizes as command-line flags.
CLI_TINY = ["--dataset", "synthetic", "--synthetic-size", "32", "--batch-size", "8", "--channels", "4", "--device",
            "cpu", "--no-progress"]
NB201_CLI_TINY = ["--preset", "darts-nb201", "--dataset", "synthetic", "--synthetic-size", "32", "--batch-size", "8",
                  "--channels", "4", "--cells-per-stage", "1", "--device", "cpu", "--no-progress"]


def tiny_search(**kw):
    from darts_nas.config import SearchConfig

    return SearchConfig(**{**SEARCH_TINY, **kw})


def tiny_train(**kw):
    from darts_nas.config import TrainConfig

    return TrainConfig(**{**TRAIN_TINY, **kw})


def tiny_nb201(**kw):
    from darts_nas.config import SearchConfig

    return SearchConfig(**{**NB201_TINY, **kw})


def tiny_prime(**kw):
    """DARTS-PRIME's preset at the tiny sizes (10 weight steps an epoch)."""
    from darts_nas.config import SearchConfig, preset_config

    values = dict(preset_config("darts-prime-cifar10").to_dict())
    values.update(dataset="synthetic", synthetic_size=96, image_size=8, channels=4, layers=3, nodes=2, batch_size=8,
                  epochs=2, device="cpu", progress=False, hessian_every=0, arch_lr=0.05, seed=1, fisher_threshold=30.0)
    values.update(kw)
    return SearchConfig(**values)


def write_corpus(root: Path, lines=(240, 40, 40), words: int = 20) -> Path:
    """A tiny PTB-style corpus (train/valid/test files)."""
    from darts_nas.data.text import write_tiny_corpus

    return write_tiny_corpus(root, "ptb", lines=lines, words=words)


def run_main(argv) -> tuple[int, str, str]:
    """`darts-nas ARGV` in this process: exit status, stdout, stderr (session fixtures have no capsys)."""
    from darts_nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of a session run, for a test that writes into it."""
    return Path(shutil.copytree(run_dir, tmp_path / Path(run_dir).name))


# -- runs made once per session ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def search_run(tmp_path_factory):
    """A finished 2-epoch tiny DARTS-CNN search (SEARCH_TINY): its directory and its result."""
    from darts_nas.run import start_search

    d = tmp_path_factory.mktemp("search") / "run"
    result = start_search(tiny_search(epochs=2), d, echo=quiet).run()
    return SimpleNamespace(dir=d, result=result)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """An image network trained 2 epochs from the command line, with TensorBoard (the DARTS_V2 cell, 32x32)."""
    d = tmp_path_factory.mktemp("trained") / "img"
    status, _, err = run_main(["train", *CLI_TINY, "--layers", "3", "--epochs", "2", "--tensorboard", "--out", d])
    assert status == 0, err
    return d


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory):
    """A language model trained 1 epoch from the command line on a tiny corpus."""
    root = tmp_path_factory.mktemp("lm")
    corpus = write_corpus(root / "corpus", lines=(60, 20, 20), words=12)
    status, _, err = run_main(["train", "--preset", "darts-ptb-eval", "--data", corpus, "--units", "8",
                               "--batch-size", "4", "--bptt", "6", "--epochs", "1", "--eval-batch-size", "2",
                               "--test-batch-size", "1", "--device", "cpu", "--no-progress", "--out", root / "lm"])
    assert status == 0, err
    return root / "lm"


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """The recurrent tests' corpus: 240/40/40 lines of 20 words."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))
