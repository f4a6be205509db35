"""`darts-nas bench`: time the search step, the evaluation network's training step and the other measured costs on
synthetic data, one module per benchmark (common: what they share).

Each configuration runs in a child process so that its peak memory is its own (on CPU the figure is the child's
peak resident set size, which includes PyTorch itself; on CUDA it is ``torch.cuda.max_memory_allocated``).
Figures are medians over timed steps after warm-up; images/s counts the training batch of a step, as the
original DARTS code's figures quoted in docs/benchmarks.md do. The tables hold only what the command
measured in this run on this machine.
"""

from .common import check_device, machine_description, run_child, time_steps
from .estimators import bench_estimators, format_estimators_table
from .hypergradient import bench_hypergradient, format_hypergradient_table
from .reversible import bench_reversible, format_reversible_table, measure_reversible, saved_tensor_bytes
from .rl import RL_BENCH_CELL, bench_rl, format_rl_table
from .rnn import bench_rnn, format_rnn_table, measure_lm_train_step, measure_rnn_search_step
from .scaling import format_scaling_table, run_scaling
from .search import bench_search, format_table, measure_search_step
from .signals import bench_signals, format_signals_table, measure_signal_share
from .train import bench_train, format_train_table, measure_train_step

__all__ = ["RL_BENCH_CELL", "bench_estimators", "bench_hypergradient", "bench_reversible", "bench_rl", "bench_rnn",
           "bench_search", "bench_signals", "bench_train", "check_device", "format_estimators_table",
           "format_hypergradient_table", "format_reversible_table", "format_rl_table", "format_rnn_table",
           "format_scaling_table", "format_signals_table", "format_table", "format_train_table",
           "machine_description", "measure_lm_train_step", "measure_reversible", "measure_rnn_search_step",
           "measure_search_step", "measure_signal_share", "measure_train_step", "run_child", "run_scaling",
           "saved_tensor_bytes", "time_steps"]
