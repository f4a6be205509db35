"""The child process of run_child: `python -m darts_nas.bench KIND JSON` measures one configuration and prints
its result as one JSON line (rank 0 under torchrun)."""

import json
import sys

from .. import distributed
from . import (measure_lm_train_step, measure_reversible, measure_rnn_search_step, measure_search_step,
               measure_signal_share, measure_train_step)

measure = {"search": measure_search_step, "signals": measure_signal_share, "train": measure_train_step,
           "rnn-search": measure_rnn_search_step, "lm-train": measure_lm_train_step,
           "reversible": measure_reversible}[sys.argv[1]]
try:
    result = measure(**json.loads(sys.argv[2]))
except BaseException:
    distributed.shutdown(clean=False)
    raise
distributed.shutdown()
if distributed.is_main():
    print(json.dumps(result))
distributed.exit_process(0)
