"""bench hypergradient: the recurrent second-order architecture gradient, exact vs the DARTS authors' way."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DartsNasError


def bench_hypergradient(run, data: str = "", batches: int = 5) -> list[dict]:
    """The recurrent second-order architecture gradient computed exactly and the DARTS authors' way, at a recurrent
    search's checkpoint, on its corpus' first `batches` training and validation windows (dropout off): per batch,
    both norms, the first-order gradient's norm, ||authors - exact|| / ||exact|| and their cosine."""
    from ..data.text import batchify, load_corpus, window
    from ..run.search import search_model_from_checkpoint
    from ..strategies.bilevel import architecture_gradient, authors_architecture_gradient

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
        authors = flat(authors_architecture_gradient(model, tb, vb, eta=c["lr"], weight_decay=c["weight_decay"],
                                                     clip=c["grad_clip"])[0])
        first = flat(architecture_gradient(model, tb, vb, order=1))
        rows.append({"batch": k, "exact_norm": exact.norm().item(), "authors_norm": authors.norm().item(),
                     "first_order_norm": first.norm().item(),
                     "relative_difference": ((authors - exact).norm() / exact.norm()).item(),
                     "cosine": torch.nn.functional.cosine_similarity(authors, exact, dim=0).item(),
                     "epoch": state["epoch"], "run": str(run)})
    return rows


def format_hypergradient_table(rows: list[dict]) -> str:
    lines = [f"{'batch':>5} {'|exact|':>10} {'|authors|':>10} {'|1st order|':>11} {'rel. diff':>10} {'cosine':>7}"]
    lines += [f"{r['batch']:>5} {r['exact_norm']:>10.4g} {r['authors_norm']:>10.4g} {r['first_order_norm']:>11.4g} "
              f"{r['relative_difference']:>10.3f} {r['cosine']:>7.3f}" for r in rows]
    return "\n".join(lines)
