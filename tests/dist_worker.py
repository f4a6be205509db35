"""Run by the distributed tests under torchrun: ``torchrun --nproc_per_node N tests/dist_worker.py OUT_DIR PLAN``.

One launch runs many jobs in one process group, so the suite pays torchrun's start and the ranks' imports once.
PLAN is a JSON list of jobs, each with a "name" and one of:
- "cases": run the named cases of distributed_cases and the training case on this rank's shards, and save what
  each ends with to OUT_DIR/NAME/rank<R>.pt;
- "argv": run the command line (``darts_nas.cli.main``) as ``python -m darts_nas ARGV`` would, "{RANK}" in an
  argument replaced by the rank, and "patch" optionally naming a change of the package for that job (see PATCHES);
  its exit status, stdout and stderr go to OUT_DIR/NAME/rank<R>.json;
- "copy": [SRC, DST], a copy of a run directory made by rank 0 while the others wait.
The ranks keep the process group between jobs (the command line's own shutdown is held until the last job) and
meet at a barrier after each one."""

import contextlib
import io
import json
import os
import shutil
import sys
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from darts_nas import distributed  # noqa: E402
from distributed_cases import run_case, run_training  # noqa: E402


@contextlib.contextmanager
def nan_on_rank_1_in_epoch_2():
    """Rank 1's loss turns NaN in the second epoch; rank 0's own shard is fine."""
    from darts_nas.run.search import SearchRun
    from darts_nas.spaces.darts_cnn import DartsCNNSearchModel

    state = {"epoch": 0}
    run_epoch, loss = SearchRun.run_epoch, DartsCNNSearchModel.loss

    def counted(self, epoch):
        state["epoch"] = epoch
        return run_epoch(self, epoch)

    def poisoned(self, batch, weights=None):
        value, out = loss(self, batch, weights)
        if os.environ["RANK"] == "1" and state["epoch"] == 1:
            value = value * float("nan")
        return value, out

    SearchRun.run_epoch, DartsCNNSearchModel.loss = counted, poisoned
    try:
        yield
    finally:
        SearchRun.run_epoch, DartsCNNSearchModel.loss = run_epoch, loss


PATCHES = {"nan-on-rank-1": nan_on_rank_1_in_epoch_2}


def run_command(job: dict, rank: int) -> dict:
    """One command line on this rank: its exit status and what it printed."""
    from darts_nas.cli import main

    argv = [a.replace("{RANK}", str(rank)) for a in job["argv"]]
    out, err = io.StringIO(), io.StringIO()
    patch = PATCHES[job["patch"]]() if job.get("patch") else contextlib.nullcontext()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), patch:
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - recorded for the test to show
            traceback.print_exc()
            status = 1
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def run_job(job: dict, out_dir: Path, rank: int) -> None:
    where = out_dir / job["name"]
    if rank == 0:
        where.mkdir(parents=True, exist_ok=True)
    torch.distributed.barrier()
    if "cases" in job:
        results = {name: run_case(name) for name in job["cases"]}
        results["training"] = run_training()
        torch.save(results, where / f"rank{rank}.pt")
    elif "copy" in job:
        if rank == 0:
            shutil.copytree(*job["copy"])
    else:
        (where / f"rank{rank}.json").write_text(json.dumps(run_command(job, rank)))
    torch.distributed.barrier()


torch.set_num_threads(1)
distributed.setup(torch.device("cpu"))
leave = distributed.shutdown
distributed.shutdown = lambda clean=True: None  # the group outlives each command
for job in json.loads(Path(sys.argv[2]).read_text()):
    run_job(job, Path(sys.argv[1]), distributed.rank())
leave()
distributed.exit_process(0)
