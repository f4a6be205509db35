"""bench rnn-search|lm-train: the recurrent search step and the language model's training step."""

from __future__ import annotations

import torch

from ..run.common import resolve_device
from .common import check_device, run_child, time_steps


def _tokens(batch_size: int, bptt: int, vocab: int, dev: torch.device, g: torch.Generator) -> list[torch.Tensor]:
    t = torch.randint(0, vocab, (bptt + 1, batch_size), device=dev, generator=g)
    return [t[:-1], t[1:]]


def measure_rnn_search_step(device: str, batch_size: int = 256, bptt: int = 35, units: int = 300, vocab: int = 10000,
                            order: int = 1, hvp: str = "finite-difference", steps: int = 3, warmup: int = 1,
                            seed: int = 0) -> dict:
    """The recurrent search step (darts-ptb settings: 8 nodes, SGD lr 20, clip 0.25 also in the virtual step) on
    random tokens of a `vocab`-word vocabulary, windows of exactly `bptt`, hidden state carried."""
    from ..config import preset_config
    from ..run.search import build_optimizers
    from ..spaces.darts_rnn import DartsRNNSearchModel
    from ..strategies import Bilevel

    dev = resolve_device(device)
    c = preset_config("darts-ptb", batch_size=batch_size, bptt=bptt, units=units, order=order, hvp=hvp)
    torch.manual_seed(seed)
    model = DartsRNNSearchModel(vocab, units=units, steps=c.nodes, tar=c.tar).to(dev)
    w_opt, a_opt = build_optimizers(model, c)
    strategy = Bilevel(order=order, hvp=hvp, virtual_clip=c.virtual_step_clip)
    g = torch.Generator(device=dev).manual_seed(seed)
    train, val = _tokens(batch_size, bptt, vocab, dev, g), _tokens(batch_size, bptt, vocab, dev, g)
    hidden = {"train": model.init_hidden(batch_size), "val": model.init_hidden(batch_size)}

    def step():
        _, hidden["train"], hidden["val"] = strategy.step(model, (*train, hidden["train"]), (*val, hidden["val"]),
                                                          w_opt, a_opt, c.lr, c.grad_clip)

    r = time_steps(step, dev, batch_size * bptt, warmup, steps)
    r["tokens_per_s"] = r.pop("images_per_s")
    return {"device": str(dev), "batch_size": batch_size, "bptt": bptt, "units": units, "vocab": vocab,
            "order": order, "hvp": hvp if order == 2 else None, "steps": steps, **r}


def measure_lm_train_step(device: str, batch_size: int = 64, bptt: int = 35, units: int = 850, vocab: int = 10000,
                          genotype: str = "DARTS_V2", steps: int = 3, warmup: int = 1, seed: int = 0) -> dict:
    """The evaluation language model's training step (darts-ptb-eval settings) on random tokens."""
    from ..config import train_preset_config
    from ..nets.rnn import activation_penalty, lm_cross_entropy, parameter_count
    from ..genotypes import load_recurrent_genotype
    from ..run.lm import build_lm

    dev = resolve_device(device)
    c = train_preset_config("darts-ptb-eval", batch_size=batch_size, bptt=bptt, units=units, genotype=genotype)
    torch.manual_seed(seed)
    model = build_lm(c, load_recurrent_genotype(genotype), vocab).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    g = torch.Generator(device=dev).manual_seed(seed)
    x, y = _tokens(batch_size, bptt, vocab, dev, g)
    state = {"hidden": model.init_hidden(batch_size)}

    def step():
        logits, last, raw, dropped = model(x, state["hidden"])
        state["hidden"] = last.detach()
        opt.zero_grad(set_to_none=True)
        (lm_cross_entropy(logits, y) + activation_penalty(raw, dropped, c.ar, c.tar)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip, foreach=True)
        opt.step()

    r = time_steps(step, dev, batch_size * bptt, warmup, steps)
    r["tokens_per_s"] = r.pop("images_per_s")
    return {"device": str(dev), "batch_size": batch_size, "bptt": bptt, "units": units, "vocab": vocab,
            "genotype": genotype, "params": parameter_count(model), "steps": steps, **r}


def bench_rnn(what: str, device="cpu", echo=print, orders=(1, 2), hvps=("finite-difference",), **args) -> list[dict]:
    """`what` = "rnn-search" (each order / product) or "lm-train", each measurement in a child process."""
    check_device(device, {})
    if what == "lm-train":
        echo(f"timing the language model's training step ({args}) on {device} ...")
        return [run_child(dict(device=device, **args), what)]
    results = []
    for order in orders:
        for hvp in (hvps if order == 2 else ("finite-difference",)):
            echo(f"timing the recurrent search step, order {order}{' (' + hvp + ')' if order == 2 else ''} "
                 f"({args}) on {device} ...")
            results.append(run_child(dict(device=device, order=order, hvp=hvp, **args), what))
    return results


def format_rnn_table(results: list[dict]) -> str:
    head = (f"{'step':<30} {'batch':>5} {'BPTT':>4} {'units':>5} {'vocab':>6} {'s/step':>8} {'tokens/s':>9} "
            f"{'first s':>8} {'peak mem':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        if "genotype" in r:
            name = f"LM training ({r['genotype']}, {r['params'] / 1e6:.1f}M)"
        else:
            name = "search, first order" if r["order"] == 1 else f"search, second ({r['hvp']})"
        lines.append(f"{name:<30} {r['batch_size']:>5} {r['bptt']:>4} {r['units']:>5} {r['vocab']:>6} "
                     f"{r['median_s']:>8.3f} {r['tokens_per_s']:>9.0f} {r['first_step_s']:>8.2f} "
                     f"{r['peak_memory_bytes'] / 2**30:>8.2f}GB")
    return "\n".join(lines)
