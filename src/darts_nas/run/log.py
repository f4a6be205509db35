"""Console output: a progress bar on a terminal, readable epoch lines everywhere."""

from __future__ import annotations

import sys
import time

from .. import distributed


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


SHORT_NAMES = {"none": "none", "max_pool_3x3": "max", "avg_pool_3x3": "avg", "skip_connect": "skip",
               "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
               "sep_conv_7x7": "sep7", "flood_conv_3x3": "flood3", "flood_conv_5x5": "flood5",
               "dil_flood_conv_3x3": "dilflood3", "choke_conv_3x3": "choke3", "dil_choke_conv_3x3": "dilchoke3"}


def format_op_weights(primitives, weights) -> str:
    """One line: each op's weight averaged over the edges (a drift to skip or pooling shows here)."""
    mean = weights.detach().mean(0).cpu().tolist()
    return "  ".join(f"{SHORT_NAMES.get(p, p)} {m:.3f}" for p, m in zip(primitives, mean))


class Progress:
    """A one-line progress bar (stderr, terminals only): steps, rate, time left, and the latest figures the
    caller hands over at its own synchronization points (the bar itself never reads from the device)."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None, width: int = 24):
        self.total, self.desc, self.width = total, desc, width
        self.stream = stream or sys.stderr
        self.enabled = enabled and distributed.is_main() and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.n = 0
        self.postfix = ""
        self._last_draw = 0.0

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.2 or self.n >= self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.start
        frac = self.n / self.total if self.total else 1.0
        filled = int(self.width * frac)
        bar = "#" * filled + "-" * (self.width - filled)
        rate = self.n / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.n) / rate if rate > 0 else 0.0
        line = (f"\r{self.desc} [{bar}] {self.n}/{self.total} {rate:.2f} step/s "
                f"{format_duration(elapsed)}<{format_duration(left)} {self.postfix}")
        self.stream.write(line[:160].ljust(100))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 160 + "\r")
            self.stream.flush()
