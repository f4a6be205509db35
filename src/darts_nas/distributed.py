"""Data-parallel runs on torch.distributed, launched by PyTorch's own launcher:

    torchrun --nproc_per_node N -m darts_nas search|train ...           (one machine)
    torchrun --nnodes M --nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m darts_nas ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; a run started under it joins the process group here: NCCL with
each rank on its LOCAL_RANK's GPU on CUDA, gloo on CPU (so everything is testable on a CPU machine).

The model: ``--batch-size`` is always the global batch. Every rank holds the same weights, alphas and optimizer
states, computes on its shard (batch / world size examples) of each global batch, and every gradient that moves
weights or alphas (the weights' gradient, the alphas' gradient, the virtual step's, each Hessian-vector product
and Neumann term, the Hessian eigenvalue's products) is averaged over the ranks by :func:`average` before it is
used. Since each shard's loss is a mean over equally many examples, the average is the gradient of the global
batch's loss; the only difference from one process is BatchNorm, whose batch statistics are per rank ("ghost
batches" of batch / world size examples). Penalties that depend on the alphas alone are computed identically on
every rank and need no averaging. Every rank then takes the same optimizer step, and :func:`check_replicas`
verifies once per epoch (one checksum per tensor, gathered) that they did.

Outside torchrun (WORLD_SIZE unset or 1) every function here is a no-op, so the single-process code is the same
code.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import sys
from typing import Sequence

import torch
import torch.distributed as dist

from .errors import DartsNasError


class RankMismatch(DartsNasError):
    """The ranks disagree (settings, data, or replicated state): the run stopped on every rank."""


# -- who am I ----------------------------------------------------------------------------------------------------
def launched() -> bool:
    """Whether this process was started by torchrun with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    if active():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0, the one rank that writes files and prints (also before the group is joined, from RANK)."""
    return rank() == 0


def describe() -> str:
    """How a run's first line mentions the ranks ("" in one process)."""
    if not active():
        return ""
    return f", {world_size()} ranks ({dist.get_backend()})"


def main_only(echo):
    """`echo` on rank 0, nothing on the others."""
    if is_main():
        return echo
    return lambda *a, **k: None


# -- joining -----------------------------------------------------------------------------------------------------
def setup(device: torch.device, timeout_minutes: float = 30.0) -> torch.device:
    """Join the process group torchrun describes (once) and return this rank's device: ``cuda:LOCAL_RANK`` for a
    CUDA run, the CPU otherwise. Outside torchrun, `device` unchanged."""
    if not launched():
        return device
    if device.type == "cuda":
        if device.index not in (None, local_rank()):
            raise DartsNasError(f"--device {device}: under torchrun each rank takes its LOCAL_RANK's GPU; give "
                                "--device cuda (or auto)")
        count = torch.cuda.device_count()
        if local_rank() >= count:
            raise DartsNasError(f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', local_rank() + 1)} processes "
                                f"on this machine but it has {count} GPU{'s' * (count != 1)}; use "
                                f"--nproc_per_node {count} or fewer")
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
        _stop_cleanly_when_terminated()
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    if backend_device != device.type:
        raise DartsNasError(f"this process group runs on {backend_device} but the run asks for {device.type}")
    return device


def from_main(value):
    """Rank 0's `value` on every rank (a generated run-directory name, say)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(clean: bool = True) -> None:
    """Leave the process group; after a clean end, all ranks together (a barrier first), so none tears down the
    connections while another still uses them."""
    if dist.is_available() and dist.is_initialized():
        if clean and world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def exit_process(status: int):
    """End the process with `status`. A torchrun rank, whose process group is already left, ends at once
    (os._exit after flushing): under load, C++ teardown at interpreter exit could abort a rank that had finished
    its work ("terminate called without an active exception"), failing a run that had succeeded."""
    if launched():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


_reported = False


def report_lost_rank() -> None:
    """The one line rank 0 prints when another rank went away (once, whichever way this rank learns it)."""
    global _reported
    if is_main() and not _reported:
        _reported = True
        print(f"darts-nas: error: {LOST_RANK}", file=sys.stderr, flush=True)


LOST_RANK = ("another rank stopped, so this one stopped too; the last good checkpoint is kept (resume with "
             "--resume RUN_DIR)")


def lost_peer(error: BaseException) -> bool:
    """Whether `error` is a collective that failed because another rank went away (gloo sees the closed
    connection at once; NCCL's ranks are stopped by torchrun)."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    kinds = tuple(k for k in (getattr(dist, "DistBackendError", None), getattr(dist, "DistNetworkError", None)) if k)
    text = str(error)
    return isinstance(error, kinds) or any(s in text for s in ("Connection closed by peer", "Connection reset by peer",
                                                                "gloo/transport", "NCCL error"))


def _stop_cleanly_when_terminated() -> None:
    """torchrun stops the other ranks with SIGTERM when one fails: say so in one line (rank 0) instead of a
    traceback. Checkpoints are written atomically, so the last good one stays."""
    def handler(signum, frame):
        report_lost_rank()
        os._exit(1)

    signal.signal(signal.SIGTERM, handler)


# -- the collectives the runs use --------------------------------------------------------------------------------
def average(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor] | None = None
            ) -> list[torch.Tensor | None]:
    """Average a list of gradients over the ranks in one all-reduce of one flat buffer (static shapes, nothing
    read back to the host). A None (a weight the forward did not use: an op GDAS did not select) travels as zeros
    of its parameter's shape (`params`) so that every rank calls the same collective, and comes back None: GDAS
    draws the same ops on every rank (the same seeded generator), so the ranks agree on which are None, and the
    per-epoch replica check would catch a rank that did not."""
    grads = list(grads)
    if not active() or not grads:
        return grads
    if any(g is None for g in grads) and params is None:
        raise ValueError("average() needs the parameters to stand in for missing gradients")
    shapes = [g if g is not None else params[i] for i, g in enumerate(grads)]
    dtype = shapes[0].dtype
    flat = torch.cat([(g.detach() if g is not None else torch.zeros_like(shapes[i], dtype=dtype)).reshape(-1)
                      .to(dtype) for i, g in enumerate(grads)])
    dist.all_reduce(flat)
    flat.div_(world_size())
    out, offset = [], 0
    for g, like in zip(grads, shapes):
        n = like.numel()
        out.append(None if g is None else flat[offset:offset + n].view(g.shape).to(g.dtype))
        offset += n
    return out


def average_gradients(params) -> None:
    """After ``loss.backward()`` on this rank's shard: every parameter's ``.grad`` becomes the mean over the ranks
    (the gradient of the global batch), in one all-reduce; what data-parallel training needs before clipping
    and the optimizer step. Parameters without a gradient (unused) keep none."""
    if not active():
        return
    params = list(params)
    for p, g in zip(params, average([p.grad for p in params], params)):
        if g is not None:
            p.grad = g


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum over the ranks of a tensor (a copy; the input when not distributed)."""
    if not active():
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out


def average_buffers(module: torch.nn.Module) -> None:
    """Average BatchNorm's running statistics over the ranks, in place: each rank's BatchNorm tracks its own
    shards' statistics; their mean estimates the whole data's, and afterwards every rank holds the same module
    (evaluation and checkpoints agree). The batch counts agree already."""
    if not active():
        return
    buffers = [b for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for b in (m.running_mean, m.running_var) if b is not None]
    if buffers:
        for b, avg in zip(buffers, average(buffers)):
            b.copy_(avg)


# -- sharding ----------------------------------------------------------------------------------------------------
# How a run was launched goes into its config.json under LAUNCH_KEY, beside the settings (which --config and --resume
# read; both skip this key): the world size, the batch each rank computes and the global batch, and under "launches"
# one entry per invocation (the epoch it started from), since a resume may use another world size.
LAUNCH_KEY = "launch"


def launch_record(batch_size: int | None, epoch: int = 0) -> dict:
    """This invocation's launch: the world size and, for a run with a global --batch-size, each rank's share."""
    n = world_size()
    record = {"epoch": epoch, "world_size": n}
    if isinstance(batch_size, int):
        record.update(per_rank_batch=batch_size // n, global_batch=batch_size)
    return record


def read_launch(run_dir) -> dict | None:
    """The launch a run's config.json records, or None where it has none (a run from before it was recorded)."""
    from pathlib import Path

    try:
        record = json.loads((Path(run_dir) / "config.json").read_text()).get(LAUNCH_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("world_size"), int) else None


def launch_text(record: dict | None) -> str:
    """A run's launch in words: "2 ranks x batch 32 (global 64)", "1 process, batch 64", with the earlier world
    sizes of a run resumed on another; "-" when not recorded."""
    if not record:
        return "-"

    def one(r: dict) -> str:
        n, b = r.get("world_size"), r.get("per_rank_batch")
        if n == 1:
            return "1 process" + (f", batch {b}" if b is not None else "")
        return f"{n} ranks" + (f" x batch {b} (global {r.get('global_batch')})" if b is not None else "")

    earlier = [e for e in record.get("launches", [])[:-1] if isinstance(e, dict)]
    sizes = {e.get("world_size") for e in earlier} - {record.get("world_size")}
    if not sizes:
        return one(record)
    return one(record) + "; before: " + ", ".join(f"from epoch {e.get('epoch')} on {one(e)}" for e in earlier)


def shard_size(batch: int, what: str = "--batch-size") -> int:
    """Examples per rank of a global batch; the world size must divide it."""
    n = world_size()
    if batch % n:
        raise DartsNasError(f"{what} {batch} is the global batch, which {n} ranks cannot share equally; use a "
                            f"multiple of {n} (each rank computes batch / world size examples)")
    return batch // n


def shard(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """This rank's equal part of a global batch along `dim` (the whole tensor when not distributed)."""
    n = world_size()
    if n == 1:
        return tensor
    size = shard_size(tensor.shape[dim], f"a batch of {tensor.shape[dim]}")
    return tensor.narrow(dim, rank() * size, size)


def part_range(n: int) -> tuple[int, int]:
    """This rank's contiguous part [lo, hi) of n examples for evaluation: every example on exactly one rank (sizes
    differ by at most one; nothing is padded or repeated, unlike DistributedSampler)."""
    r, w = rank(), world_size()
    return (r * n) // w, ((r + 1) * n) // w


# -- agreement ---------------------------------------------------------------------------------------------------
def check_same(values: dict, what: str) -> None:
    """Stop on every rank, with one message, when the ranks were started with different `values` (settings,
    data sizes): a mixed launch."""
    if not active():
        return
    text = json.dumps(values, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, (digest, values))
    differ = [i for i, (d, _) in enumerate(gathered) if d != gathered[0][0]]
    if differ:
        mine, theirs = gathered[0][1], gathered[differ[0]][1]
        keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise RankMismatch(f"the ranks were launched with different {what}: rank {differ[0]} differs from rank 0 in "
                           f"{', '.join(keys[:6])}; launch every rank with the same command and data")


def checksum(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Two float64 figures per tensor (the sum and the sum of squares): cheap, and any rank whose copy drifted
    changes them."""
    rows = []
    for t in tensors:
        d = t.detach().double()
        rows.append(torch.stack([d.sum(), (d * d).sum()]))
    return torch.stack(rows) if rows else torch.zeros(0, 2, dtype=torch.float64)


def check_replicas(named: dict[str, Sequence[torch.Tensor]], epoch: int) -> None:
    """Verify that every rank holds the same weights, alphas and optimizer states (after epoch `epoch`, 1-based):
    one checksum per tensor, gathered and compared exactly; a mismatch stops every rank with one message."""
    if not active():
        return
    names, sums = [], []
    for name, tensors in named.items():
        c = checksum(tensors)
        names += [name] * c.shape[0]
        sums.append(c)
    local = torch.cat(sums) if sums else torch.zeros(0, 2, dtype=torch.float64)
    gathered = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(gathered, local)
    reference = gathered[0].cpu()
    for r, other in enumerate(gathered[1:], 1):
        bad = (other.cpu() != reference).any(1).nonzero().flatten().tolist()
        if bad:
            what = sorted({names[i] for i in bad})
            raise RankMismatch(f"after epoch {epoch} rank {r} holds different {', '.join(what)} than rank 0 "
                               f"({len(bad)} tensors differ): the ranks no longer compute the same search; the run "
                               "stopped (its last good checkpoint is kept)")


def state_tensors(*objects) -> list[torch.Tensor]:
    """Every tensor of modules (parameters and buffers) and optimizers (their states), in a fixed order."""
    out = []
    for obj in objects:
        if isinstance(obj, torch.optim.Optimizer):
            state = obj.state_dict()["state"]
            for key in sorted(state):
                out += [v for _, v in sorted(state[key].items()) if isinstance(v, torch.Tensor)]
        elif isinstance(obj, torch.nn.Module):
            out += [v for v in obj.state_dict().values() if isinstance(v, torch.Tensor)]
        elif obj is not None:
            out += [v for v in obj if isinstance(v, torch.Tensor)]
    return out
