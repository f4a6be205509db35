"""The one epoch loop every run shares (a search, training an image network, training a language model): epochs
up to ``config.epochs``, ``stop_after`` for a partial invocation, an early stop a search may decide, the NaN stop,
one atomic checkpoint and metrics.jsonl after each epoch, and the epoch's report. A run kind says what an epoch is
(:meth:`EpochRun.run_epoch`) and how it is saved and shown; the loop itself is written once, here."""

from __future__ import annotations

from pathlib import Path

from .. import distributed
from .common import check_finite, last_checkpoint_text, record_launch


class EpochRun:
    """Base of the run kinds. A subclass sets ``config`` (with ``epochs``), ``run_dir``, ``echo``, ``epoch`` (epochs
    done) and ``history`` (one metrics record per epoch), and implements :meth:`begin`, :meth:`run_epoch`,
    :meth:`save`, :meth:`report` and :meth:`end`."""

    stopped = ""  # set by a run that ends early (a search's collapse stop); the loop then ends
    _tensorboard = None
    nan_hint = "Lower --lr, or check the data."

    def begin(self) -> None:  # pragma: no cover - abstract
        """Before the first epoch of this invocation: the run's first files, the line that says what it is."""
        raise NotImplementedError

    def run_epoch(self, epoch: int) -> dict:  # pragma: no cover - abstract
        """Train (and evaluate) epoch `epoch` (0-based); the metrics record of the epoch."""
        raise NotImplementedError

    def save(self) -> None:  # pragma: no cover - abstract
        """Everything to resume after the epoch just recorded, written atomically, and metrics.jsonl."""
        raise NotImplementedError

    def report(self, record: dict) -> None:
        """The epoch's lines for the console (after it is saved)."""

    def tensorboard_genotype(self):
        """The cell drawn into TensorBoard each epoch (None: no image)."""
        return None

    def log_epoch(self, record: dict) -> None:
        """--tensorboard: the epoch's figures as events in RUN_DIR/tensorboard (rank 0)."""
        if self._tensorboard is not None:
            self._tensorboard.epoch(record, self.epoch, self.tensorboard_genotype())

    def replicas(self) -> dict:
        """What every rank of a distributed run must hold identically (modules and optimizers by name): the
        loop verifies it after each epoch."""
        return {}

    def end(self, finished: bool):  # pragma: no cover - abstract
        """After the loop: the final files of a finished run, and the result returned by :meth:`run`."""
        raise NotImplementedError

    def check_finite(self, value: float, epoch: int, step: int) -> None:
        """The NaN stop: a non-finite training loss ends the run, naming the last good checkpoint."""
        check_finite(value, "training loss", epoch, step, self.last_checkpoint(), self.nan_hint)

    def last_checkpoint(self) -> str:
        return last_checkpoint_text(Path(self.run_dir), self.epoch)

    def run(self, stop_after: int | None = None):
        """Run the epochs left (at most `stop_after` of them in this call); a checkpoint after each."""
        if getattr(self.config, "tensorboard", False) and distributed.is_main():
            from ..plots.tensorboard import TensorBoardLog  # one line, before any epoch, if it is not installed

            self._tensorboard = TensorBoardLog(Path(self.run_dir) / "tensorboard")
        previous = distributed.read_launch(self.run_dir) if self.epoch else None  # before begin() rewrites it
        self.begin()
        record_launch(Path(self.run_dir), self.config, self.epoch, previous, self.echo)
        done_now = 0
        while self.epoch < self.config.epochs and not self.stopped:
            if stop_after is not None and done_now >= stop_after:
                break
            record = self.run_epoch(self.epoch)
            self.history.append(record)
            self.epoch += 1
            distributed.check_replicas({k: distributed.state_tensors(v) for k, v in self.replicas().items()},
                                       self.epoch)
            if distributed.is_main():  # one writer; the others hold the same state
                self.save()
            done_now += 1
            self.report(record)
            self.log_epoch(record)
        if self._tensorboard is not None:
            self._tensorboard.close()
        return self.end(self.epoch >= self.config.epochs or bool(self.stopped))
