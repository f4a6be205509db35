"""bench hypergradient: the recurrent second-order architecture gradient, exact vs the DARTS authors' two ways (their
final code, --hypergradient authors, and their June 2018 release, authors-2018-06)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DartsNasError


def bench_hypergradient(run, data: str = "", batches: int = 5) -> list[dict]:
    """The recurrent second-order architecture gradient computed exactly and the DARTS authors' two ways, at a
    recurrent search's checkpoint, on its corpus' first `batches` training and validation windows (dropout off):
    per batch, the norms, the first-order gradient's norm, and for each of the authors' ways ||a - exact|| /
    ||exact|` and the cosine with the exact one (keys without a suffix: their final code; ``_2018_06``: their June
    2018 release)."""
    from ..data.text import batchify, load_corpus, window
    from ..run.search import search_model_from_checkpoint
    from ..strategies.bilevel import AUTHORS_GRADIENTS, architecture_gradient

    model, state = search_model_from_checkpoint(Path(run) / "checkpoint.pt" if Path(run).is_dir() else run)
    c = state["config"]
    if model.data_kind != "text":
        raise DartsNasError(f"{run}: bench hypergradient compares the recurrent search's hypergradients; this is a "
                            f"{model.space} search")
    corpus = load_corpus(c["dataset"], data or c["data"])
    train_tokens = corpus.train[: c["limit"]] if c.get("limit") else corpus.train
    train, val = batchify(train_tokens, c["batch_size"]), batchify(corpus.valid, c["batch_size"])
    model.eval()  # no dropout: both computations see one function (search BN uses batch statistics)
    bptt, rows = c["bptt"], []
    flat = lambda gs: torch.cat([g.flatten() for g in gs])  # noqa: E731
    for k in range(batches):
        if bptt * (k + 1) + 1 > min(len(train), len(val)):
            break
        tb = (*window(train, bptt * k, bptt), model.init_hidden(c["batch_size"]))
        vb = (*window(val, bptt * k, bptt), model.init_hidden(c["batch_size"]))
        exact = flat(architecture_gradient(model, tb, vb, order=2, eta=c["lr"], weight_decay=c["weight_decay"],
                                           virtual_clip=c["grad_clip"]))
        first = flat(architecture_gradient(model, tb, vb, order=1))
        row = {"batch": k, "exact_norm": exact.norm().item(), "first_order_norm": first.norm().item()}
        for suffix, name in (("", "authors"), ("_2018_06", "authors-2018-06")):
            authors = flat(AUTHORS_GRADIENTS[name](model, tb, vb, eta=c["lr"], weight_decay=c["weight_decay"],
                                                   clip=c["grad_clip"])[0])
            row.update(_against_exact(authors, exact, suffix))
        rows.append({**row, "epoch": state["epoch"], "run": str(run)})
    return rows


def _against_exact(authors: torch.Tensor, exact: torch.Tensor, suffix: str) -> dict:
    """One of the authors' gradients against the exact one: its norm, relative difference and cosine."""
    return {f"authors{suffix}_norm": authors.norm().item(),
            f"relative_difference{suffix}": ((authors - exact).norm() / exact.norm()).item(),
            f"cosine{suffix}": torch.nn.functional.cosine_similarity(authors, exact, dim=0).item()}


def format_hypergradient_table(rows: list[dict]) -> str:
    """One line per batch; the authors' final code, then (2018-06) their June 2018 release."""
    lines = [f"{'batch':>5} {'|exact|':>10} {'|1st order|':>11} {'|authors|':>10} {'rel. diff':>10} {'cosine':>7} "
             f"{'|2018-06|':>10} {'rel. diff':>10} {'cosine':>7}"]
    lines += [f"{r['batch']:>5} {r['exact_norm']:>10.4g} {r['first_order_norm']:>11.4g} "
              f"{r['authors_norm']:>10.4g} {r['relative_difference']:>10.3f} {r['cosine']:>7.3f} "
              f"{r['authors_2018_06_norm']:>10.4g} {r['relative_difference_2018_06']:>10.3f} "
              f"{r['cosine_2018_06']:>7.3f}" for r in rows]
    return "\n".join(lines)
