"""bench reversible: the reversible Transformer's saved-tensor bytes, peak memory and time against depth."""

from __future__ import annotations

import resource
import statistics
import time

import torch

from ..run.common import resolve_device
from .common import run_child, sync


def _reversible_setup(device: str, depth: int, reversible: bool, splits: int, d_model: int, batch_size: int,
                      length: int, vocab: int, bank: str, seed: int = 0):
    """The reversible Transformer search model of that size and a batch of random tokens (no padding)."""
    from ..spaces import RevTransformerSearchModel

    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = RevTransformerSearchModel(vocab, d_model=d_model, layers=depth, splits=splits, bank=bank,
                                      dropout=0.0, reversible=reversible).to(dev)
    g = torch.Generator().manual_seed(seed + 1)
    src = torch.randint(4, vocab, (batch_size, length), generator=g).to(dev)
    tgt = torch.randint(4, vocab, (batch_size, length + 1), generator=g).to(dev)
    return model, (src, tgt[:, :-1], tgt[:, 1:]), dev


def saved_tensor_bytes(model, batch) -> int:
    """Bytes autograd keeps for the backward of one loss (forward to loss), counted by saved_tensors_hooks;
    tensors sharing a parameter's storage (weights saved by matmuls) are not activations and are left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = model.loss(batch)
    loss.backward()
    return total


def measure_reversible(device: str = "cpu", depth: int = 2, reversible: bool = True, splits: int = 2,
                       d_model: int = 256, batch_size: int = 32, length: int = 64, vocab: int = 8000,
                       bank: str = "evolved", steps: int = 3, warmup: int = 1) -> dict:
    """One reversible Transformer search model's forward+backward: saved-tensor bytes, median seconds, peak
    memory growth over the set-up (CUDA: max allocated; CPU: the process's peak RSS, in a fresh process), and the
    largest reconstruction error of the stacks' inputs (reversible only)."""
    model, batch, dev = _reversible_setup(device, depth, reversible, splits, d_model, batch_size, length, vocab,
                                          bank)
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    saved = saved_tensor_bytes(model, batch)  # the first step: its peak is the one measured
    sync(dev)
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
    times = []
    for i in range(warmup + steps):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss, _ = model.loss(batch)
        loss.backward()
        sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    error = None
    if reversible:
        with torch.no_grad():
            net = model.net
            enc_w, dec_w = model._stack_weights(model.op_weights())
            x = net._embed(batch[0])
            side = (None, (batch[0] != 0)[:, None, None, :], None, None)
            parts = [x] * splits
            out = net.encoder(parts, side, enc_w)
            back = net.encoder.inverse(out, side, enc_w)
            error = max(float((a - b).abs().max()) for a, b in zip(back, parts))
    return {"depth": depth, "reversible": reversible, "splits": splits, "d_model": d_model, "batch_size": batch_size,
            "length": length, "vocab": vocab, "bank": bank, "saved_bytes": saved, "peak_bytes": peak,
            "memory_kind": "cuda max allocated" if dev.type == "cuda" else "process peak RSS growth",
            "median_s": statistics.median(times), "reconstruction_error": error,
            "params": sum(p.numel() for p in model.weight_parameters())}


def bench_reversible(device: str = "cpu", depths=(1, 2, 4, 8), echo=print, **args) -> list[dict]:
    results = []
    for depth in depths:
        for reversible in (True, False):
            echo(f"  depth {depth} {'reversible' if reversible else 'plain'} ...")
            results.append(run_child(dict(device=device, depth=depth, reversible=reversible, **args), "reversible"))
    return results


def format_reversible_table(results: list[dict]) -> str:
    r0 = results[0]
    lines = [f"reversible Transformer search model, op bank {r0['bank']}: {r0['splits']} splits, d {r0['d_model']}, "
             f"batch {r0['batch_size']} x {r0['length']} tokens, vocabulary {r0['vocab']}; forward + backward",
             f"{'blocks':>6} {'backward':<13} {'params':>8} {'saved MB':>9} {'peak MB':>8} {'s/step':>7} "
             f"{'reconstruction':>14}"]
    for r in results:
        err = f"{r['reconstruction_error']:.1e}" if r["reconstruction_error"] is not None else "-"
        lines.append(f"{r['depth']:>6} {'reconstructing' if r['reversible'] else 'plain':<13} "
                     f"{r['params'] / 1e6:>7.2f}M {r['saved_bytes'] / 2**20:>9.1f} {r['peak_bytes'] / 2**20:>8.1f} "
                     f"{r['median_s']:>7.3f} {err:>14}")
    by = {(r["depth"], r["reversible"]): r for r in results}
    deepest = max(r["depth"] for r in results)
    if (deepest, True) in by and (deepest, False) in by:
        rev, plain = by[(deepest, True)], by[(deepest, False)]
        lines.append(f"at {deepest} blocks: plain / reconstructing saved bytes {plain['saved_bytes'] / rev['saved_bytes']:.2f}x, "
                     f"peak memory {plain['peak_bytes'] / max(rev['peak_bytes'], 1):.2f}x ({rev['memory_kind']}); "
                     f"time {rev['median_s'] / plain['median_s']:.2f}x")
    lines.append("saved: bytes autograd holds for backward (saved_tensors_hooks; parameters excluded); "
                 "reconstruction: largest |x - inverse(forward(x))| of the encoder stack, fp32")
    return "\n".join(lines)
