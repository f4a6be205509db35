"""Whole training steps replayed from CUDA graphs (docs/benchmarks.md, speed settings).

About 70% of an eager search step on a GPU is launch and Python overhead (profiles of the original code): replaying the
same kernels from one CUDA graph removes it. :class:`CapturedStep` turns any step function whose inputs are
tensors of fixed shape into a replayed one:

* the first `warmup` calls run the step eagerly (on a side stream, as CUDA graph capture requires), so lazy
  initialisation (cuDNN plans, optimizer state, momentum buffers) happens outside the graph;
* the next call captures the step and replays it once; later calls copy their inputs into the captured input
  tensors and replay. Every call is exactly one real step: no step is run twice, none is skipped.

A captured step may not synchronize with the host or change shape, and anything that varies between steps must
be a tensor the step reads (the learning rate, the drop-path probability): a Python number is frozen into the
graph at capture. The step's outputs are the graph's own tensors, overwritten by the next replay.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import DartsNasError


def require_cuda_graphs(device: torch.device) -> None:
    if device.type != "cuda":
        raise DartsNasError(f"--cuda-graphs needs a CUDA device (this run is on {device}); drop --cuda-graphs")


class CapturedStep:
    """`step(*inputs)` run eagerly `warmup` times, then captured once and replayed (see the module doc)."""

    def __init__(self, step: Callable[..., tuple], warmup: int = 2):
        if warmup < 1:
            raise ValueError("CUDA graph capture needs at least one eager warm-up step")
        self.step = step
        self.warmup = warmup
        self.calls = 0
        self.inputs: tuple[torch.Tensor, ...] | None = None
        self.outputs = None
        self.graph = None

    def __call__(self, *inputs: torch.Tensor):
        self._load_inputs(inputs)
        if self.calls < self.warmup:
            out = self._run_eager()
        else:
            if self.graph is None:
                self.outputs = self._capture()
            self._replay()
            out = self.outputs
        self.calls += 1
        return out

    def _load_inputs(self, inputs) -> None:
        if self.inputs is None:
            self.inputs = tuple(t.detach().clone() for t in inputs)
            return
        if len(inputs) != len(self.inputs) or any(t.shape != s.shape or t.dtype != s.dtype
                                                  for t, s in zip(inputs, self.inputs)):
            got = ", ".join(str(tuple(t.shape)) for t in inputs)
            want = ", ".join(str(tuple(s.shape)) for s in self.inputs)
            raise DartsNasError(f"a CUDA-graph step needs inputs of fixed shape: captured {want}, got {got} "
                                "(every batch must be full)")
        for static, t in zip(self.inputs, inputs):
            static.copy_(t)

    # The three CUDA operations; everything above them is plain bookkeeping.
    def _run_eager(self):
        current = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(current)
        with torch.cuda.stream(side):
            out = self.step(*self.inputs)
        current.wait_stream(side)
        return out

    def _capture(self):
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):  # loader threads may use CUDA
            return self.step(*self.inputs)

    def _replay(self) -> None:
        self.graph.replay()
