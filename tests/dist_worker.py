"""Run by the distributed tests under torchrun: ``torchrun --nproc_per_node N tests/dist_worker.py OUT_DIR
[CASE,CASE,...]``. Each rank joins the group as a run does (darts_nas.distributed.setup), runs the named cases of
distributed_cases (all by default) on its shards, and saves what it ends with to OUT_DIR/rank<R>.pt."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from darts_nas import distributed  # noqa: E402
from distributed_cases import CASES, run_case, run_training  # noqa: E402

torch.set_num_threads(1)
distributed.setup(torch.device("cpu"))
names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(CASES)
results = {name: run_case(name) for name in names}
results["training"] = run_training()
torch.save(results, Path(sys.argv[1]) / f"rank{distributed.rank()}.pt")
distributed.shutdown()
distributed.exit_process(0)
