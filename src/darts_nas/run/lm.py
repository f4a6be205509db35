"""Language-model runs: the recurrent cell search on a corpus (:class:`LMSearchRun`, the search loop of
:class:`~darts_nas.run.search.SearchRun` with text data), training the evaluation language model from a recurrent
genotype (:class:`LMTrainRun`), and its perplexity on a corpus (:func:`evaluate_lm_checkpoint`).

An epoch walks the batchified training stream in windows of random length (:func:`darts_nas.data.text.bptt_windows`)
with the hidden state carried from window to window (detached), and the learning rate of each step scaled by
length / BPTT, as the DARTS and AWD-LSTM code does. In the search, the alpha step of each window reads the
validation stream at the same row (wrapping around), with its own carried hidden state.

Reproducibility: the window lengths come from a generator seeded by (seed, epoch) and the dropout masks (and Gumbel
samples) from the default generator reseeded per epoch, so a resumed run replays an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from ..config import TrainConfig
from ..distributed import average_gradients
from ..data.text import Corpus, Vocabulary, batchify, bptt_windows, load_corpus, window
from ..errors import DartsNasError
from ..fileio import atomic_write_json
from ..genotypes import RecurrentGenotype, load_recurrent_genotype
from ..nets.rnn import RNNModel, activation_penalty, lm_cross_entropy, parameter_count
from .checkpoint import (BEST, CHECKPOINT, LM_TRAIN_KIND, MODEL_KIND, load_checkpoint, resolve_checkpoint,
                         save_checkpoint)
from .common import (epoch_seed, genotype_label, join_ranks, resolve_device, restore_states, run_token_steps,
                     save_training_files, set_lr, write_training_start)
from .log import format_duration
from .loop import EpochRun
from .search import SearchRun, build_search_model

TRAIN_KIND = LM_TRAIN_KIND


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 50 else float("inf")


def load_text(name: str, root, limit: int = 0, vocab: Vocabulary | None = None) -> Corpus:
    corpus = load_corpus(name, root, vocab)
    if limit and corpus.train is not None:
        corpus.train = corpus.train[:limit]
    return corpus


def run_windows(step, windows, label: str, log_every: int, progress: bool, check, device) -> float:
    """Call ``step(start, length) -> mean loss per token (device tensor)`` on each window of an epoch, on the
    token runs' shared step loop (:func:`~darts_nas.run.common.run_token_steps`, each window weighted by its
    length). Returns the mean loss per token."""
    return run_token_steps(lambda w: step(*w), windows, label, log_every, progress, check, device,
                           weight=lambda w: w[1], postfix=lambda m: f"loss {m:.3f} ppl {perplexity(m):.1f}")


@torch.no_grad()
def stream_loss(loss_fn, source: torch.Tensor, bptt: int, hidden: torch.Tensor, sharded: bool = False) -> float:
    """Mean cross-entropy per token over a whole batchified stream, in windows of `bptt` with the hidden state
    carried; ``loss_fn((x, y, hidden)) -> (loss, next hidden)``. ``sharded``: `source` is this rank's equal share
    of the columns, and the figure is averaged over the ranks."""
    total = torch.zeros((), device=source.device, dtype=torch.float64)
    rows = 0
    for start, n in bptt_windows(source.shape[0], bptt, fixed=True):
        x, y = window(source, start, n)
        loss, hidden = loss_fn((x, y, hidden))
        total += loss.double() * n
        rows += n
    if sharded:
        total = distributed.all_sum(total) / distributed.world_size()
    return total.item() / rows


def sharded_stream(tokens: torch.Tensor, batch_size: int, device) -> tuple[torch.Tensor, bool]:
    """A split batchified into `batch_size` columns and, in a distributed run, this rank's equal share of them;
    returns (columns, whether sharded). A batch the ranks cannot share (the test perplexity's batch of 1) is
    evaluated whole on every rank: the same figure, without the speed-up."""
    data = batchify(tokens, batch_size, device)
    if distributed.active() and batch_size % distributed.world_size() == 0:
        return distributed.shard(data, 1), True
    return data, False


# ----------------------------------------------------------------------------------------------------------------
# search
# ----------------------------------------------------------------------------------------------------------------
class LMSearchRun(SearchRun):
    """The recurrent search: the run loop, strategies, checkpoints and signals of :class:`SearchRun`, on text."""

    def setup_data(self) -> None:
        c = self.config
        self.corpus = load_text(c.dataset, c.data, c.limit)
        self.echo(f"note: {self.corpus.describe()}")
        self.local_batch = distributed.shard_size(c.batch_size)  # each rank: its share of the columns
        self.train_data = distributed.shard(batchify(self.corpus.train, c.batch_size, self.device), 1)
        self.search_data = distributed.shard(batchify(self.corpus.valid, c.batch_size, self.device), 1)  # alphas
        self.steps = math.ceil((self.train_data.shape[0] - 1) / c.bptt)  # about: window lengths vary

    def build_model(self):
        return build_search_model(self.config, vocab_size=len(self.corpus.vocab))

    def data_text(self) -> str:
        return (f"{self.config.dataset} (vocabulary {len(self.corpus.vocab):,}; {self.corpus.train.numel():,} "
                f"training tokens for weights / {self.corpus.valid.numel():,} validation tokens for alphas)")

    @staticmethod
    def metrics_text(r: dict) -> str:
        return (f"train loss {r['train_loss']:.4f} ppl {r['train_ppl']:8.2f}  val loss {r['val_loss']:.4f} "
                f"ppl {r['val_ppl']:8.2f}")

    def speed_text(self) -> str:
        return ""  # the image spaces' speed settings do not apply

    def train_epoch(self, epoch: int, lr: float) -> dict:
        c, model = self.config, self.model
        update_alphas = self.start_epoch(epoch, lr)
        g = torch.Generator().manual_seed(epoch_seed(c.seed, epoch, 0))
        windows = bptt_windows(self.train_data.shape[0], c.bptt, c.max_seq_len_delta, g)
        use_val = update_alphas and self.strategy.uses_val_batch
        val_rows = self.search_data.shape[0]
        hidden = {"train": model.init_hidden(self.local_batch), "val": model.init_hidden(self.local_batch)}

        def step(start: int, n: int):
            set_lr(self.w_opt, lr * n / c.bptt)
            val = None
            if use_val:
                v_start = start % (val_rows - 1)
                v_n = min(n, val_rows - 1 - v_start)
                val = (*window(self.search_data, v_start, v_n), hidden["val"])
            loss, hidden["train"], val_out = self.strategy.step(
                model, (*window(self.train_data, start, n), hidden["train"]), val, self.w_opt, self.a_opt,
                self.w_opt.param_groups[0]["lr"], c.grad_clip, update_alphas)
            if val_out is not None:
                hidden["val"] = val_out
            return loss

        loss = run_windows(step, windows, f"epoch {epoch + 1}/{c.epochs}", c.log_every, c.progress,
                           lambda value, i: self.check_finite(value, epoch, i), self.device)
        set_lr(self.w_opt, lr)
        return {"train_loss": loss, "train_ppl": perplexity(loss)}

    def validate(self) -> dict:
        self.model.eval()
        try:
            loss = stream_loss(self.model.loss, self.search_data, self.config.bptt,
                               self.model.init_hidden(self.local_batch), sharded=True)
        finally:
            self.model.train()
        return {"val_loss": loss, "val_ppl": perplexity(loss)}

    def signal_batches(self, count: int) -> list:
        windows = bptt_windows(self.search_data.shape[0], self.config.bptt, fixed=True)[:count]
        return [(*window(self.search_data, s, n), self.model.init_hidden(self.local_batch)) for s, n in windows]


# ----------------------------------------------------------------------------------------------------------------
# training the evaluation language model
# ----------------------------------------------------------------------------------------------------------------
def build_lm(c: TrainConfig, genotype: RecurrentGenotype, vocab_size: int) -> RNNModel:
    return RNNModel(genotype, vocab_size, units=c.units, dropout=c.dropout, dropout_h=c.dropout_h,
                    dropout_x=c.dropout_x, dropout_i=c.dropout_i, dropout_e=c.dropout_e)


def language_model_for_info(spec, dataset: str, units: int | None = None):
    """(model, genotype, units, vocabulary size, parameters) of the paper's language model for a recurrent
    genotype on PTB or WikiText-2, sized without the corpus (its known vocabulary size)."""
    from ..config import train_preset_config
    from ..data.text import PAPER_VOCABULARIES

    preset = {"ptb": "darts-ptb-eval", "wikitext-2": "darts-wt2-eval"}[dataset]
    c = train_preset_config(preset, **({"units": units} if units else {}))
    genotype = load_recurrent_genotype(spec)
    vocab = PAPER_VOCABULARIES[dataset]
    model = build_lm(c, genotype, vocab)
    return model, genotype, c.units, vocab, parameter_count(model)


def lm_loss(model: RNNModel, batch):
    """(mean cross-entropy per token, next hidden) of the evaluation language model on (tokens, targets, hidden)."""
    x, y, hidden = batch
    logits, last, _, _ = model(x, hidden)
    return lm_cross_entropy(logits, y), last


@contextlib.contextmanager
def averaged_weights(model, optimizer):
    """Inside, the model holds averaged SGD's running averages (what ASGD evaluates and saves); its own weights
    come back after. A no-op for plain SGD."""
    if not isinstance(optimizer, torch.optim.ASGD):
        yield
        return
    saved = []
    with torch.no_grad():
        for p in model.parameters():
            ax = optimizer.state.get(p, {}).get("ax")
            if ax is not None:
                saved.append((p, p.detach().clone()))
                p.copy_(ax)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, w in saved:
                p.copy_(w)


@dataclass
class LMTrainResult:
    run_dir: Path
    epochs_done: int
    finished: bool
    history: list
    best: dict | None
    final: dict | None = None


class LMTrainRun(EpochRun):
    """Training the evaluation language model of a recurrent genotype (DARTS section 3.2): SGD at a constant
    learning rate, switched once to averaged SGD when the validation loss stops improving (the non-monotone
    trigger), checkpoint every epoch, ``best.pt`` by validation perplexity. At the end the best model's validation
    and test perplexities are measured and written to ``results.json``."""

    def __init__(self, config: TrainConfig, run_dir, echo=print, genotype: RecurrentGenotype | None = None,
                 vocab: Vocabulary | None = None):
        self.config = c = config.validate()
        self.run_dir = Path(run_dir)
        self.echo = echo = distributed.main_only(echo)
        self.device = dev = join_ranks(c)
        self.genotype = genotype if genotype is not None else load_recurrent_genotype(c.genotype)
        self.corpus = load_text(c.dataset, c.data, c.limit)
        if vocab is not None and self.corpus.vocab != vocab:
            raise DartsNasError(f"the vocabulary of {c.data} is not the one this run was trained with")
        echo(f"note: {self.corpus.describe()}")
        self.local_batch = distributed.shard_size(c.batch_size)
        self.train_data = distributed.shard(batchify(self.corpus.train, c.batch_size, dev), 1)
        self.val_data, self.val_sharded = sharded_stream(self.corpus.valid, c.eval_batch_size, dev)
        torch.manual_seed(c.seed)
        self.model = build_lm(c, self.genotype, len(self.corpus.vocab)).to(dev)
        self.optimizer = self._sgd()
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None

    def _sgd(self):
        c = self.config
        return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    def _asgd(self):
        c = self.config
        return torch.optim.ASGD(self.model.parameters(), lr=c.lr, t0=0, lambd=0.0, weight_decay=c.weight_decay)

    @property
    def averaging(self) -> bool:
        return isinstance(self.optimizer, torch.optim.ASGD)

    # -- persistence -----------------------------------------------------------------------------------------
    def model_file_state(self, record: dict) -> dict:
        with averaged_weights(self.model, self.optimizer):
            model = {k: v.clone() for k, v in self.model.state_dict().items()}
        return {"kind": MODEL_KIND, "version": 1, "model_hparams": self.model.hparams, "model": model,
                "epoch": self.epoch, "metrics": record, "config": self.config.to_dict(),
                "vocab": self.corpus.vocab.words}

    def state(self) -> dict:
        return {"kind": TRAIN_KIND, "version": 1, "epoch": self.epoch, "config": self.config.to_dict(),
                "model_hparams": self.model.hparams, "model": self.model.state_dict(),
                "optimizer_kind": "asgd" if self.averaging else "sgd", "optimizer": self.optimizer.state_dict(),
                "history": self.history, "best": self.best, "vocab": self.corpus.vocab.words}

    def load_state(self, state: dict) -> None:
        if state.get("optimizer_kind") == "asgd":
            self.optimizer = self._asgd()
        restore_states(state, {"model": self.model, "optimizer": self.optimizer}, "language model")
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best = state.get("best")

    def save(self) -> None:
        save_training_files(self.run_dir, self.model_file_state(self.history[-1]), self.state(), self.history,
                            self.improved)

    # -- the loop --------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        c, model, opt = self.config, self.model, self.optimizer
        torch.manual_seed(epoch_seed(c.seed, epoch, 2))  # dropout masks
        g = torch.Generator().manual_seed(epoch_seed(c.seed, epoch, 0))
        windows = bptt_windows(self.train_data.shape[0], c.bptt, c.max_seq_len_delta, g)
        hidden = model.init_hidden(self.local_batch)
        params = list(model.parameters())
        model.train()

        def step(start: int, n: int):
            nonlocal hidden
            set_lr(opt, c.lr * n / c.bptt)
            x, y = window(self.train_data, start, n)
            logits, last, raw, dropped = model(x, hidden)
            hidden = last.detach()
            loss = lm_cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            (loss + activation_penalty(raw, dropped, c.ar, c.tar)).backward()
            average_gradients(params)
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, c.grad_clip, foreach=True)
            opt.step()
            return loss.detach()

        loss = run_windows(step, windows, f"epoch {epoch + 1}/{c.epochs}", c.log_every, c.progress,
                           lambda value, i: self.check_finite(value, epoch, i), self.device)
        set_lr(opt, c.lr)
        return loss

    def evaluate(self, source: torch.Tensor) -> float:
        """Mean loss per token on a batchified split, with ASGD's averaged weights once it averages."""
        self.model.eval()
        try:
            with averaged_weights(self.model, self.optimizer):
                return stream_loss(lambda b: lm_loss(self.model, b), source, self.config.bptt,
                                   self.model.init_hidden(source.shape[1]), sharded=self.val_sharded)
        finally:
            self.model.train()

    def describe(self) -> str:
        c = self.config
        return (f"train: {genotype_label(c.genotype)} recurrent cell, language model of {c.units} units: "
                f"{parameter_count(self.model) / 1e6:.2f}M params; {c.dataset}: vocabulary "
                f"{len(self.corpus.vocab):,}, {self.corpus.train.numel():,} training tokens, batch {c.batch_size}, "
                f"BPTT {c.bptt}; {self.device} -> {self.run_dir}")

    def replicas(self) -> dict:
        return {"language model": self.model, "optimizer state": self.optimizer}

    def tensorboard_genotype(self):
        return self.genotype if self.epoch == 1 else None

    def begin(self) -> None:
        if distributed.is_main():
            write_training_start(self.run_dir, self.config, {"hparams": self.model.hparams,
                                                             "params": parameter_count(self.model)}, self.genotype)
        self.echo(self.describe())

    def run_epoch(self, epoch: int) -> dict:
        c = self.config
        t0 = time.perf_counter()
        train_loss = self.train_epoch(epoch)
        self.check_finite(train_loss, epoch, 0)
        train_seconds = time.perf_counter() - t0
        val_loss = self.evaluate(self.val_data)
        record = {"epoch": epoch + 1, "lr": c.lr, "optimizer": "asgd" if self.averaging else "sgd",
                  "train_loss": train_loss, "train_ppl": perplexity(train_loss), "val_loss": val_loss,
                  "val_ppl": perplexity(val_loss), "train_seconds": round(train_seconds, 3),
                  "tokens_per_s": round(self.corpus.train.numel() // c.batch_size * c.batch_size / train_seconds, 1)}
        self.improved = self.best is None or val_loss < self.best["val_loss"]
        if self.improved:
            self.best = {"epoch": epoch + 1, "val_loss": val_loss, "val_ppl": perplexity(val_loss)}
        previous = [h["val_loss"] for h in self.history]
        self.switch = (not self.averaging and c.nonmono and len(previous) > c.nonmono
                       and val_loss > min(previous[:-c.nonmono]))
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return record

    def report(self, record: dict) -> None:
        c = self.config
        self.echo(f"epoch {record['epoch']:4d}/{c.epochs}  {record['optimizer']}  train loss {record['train_loss']:.4f} "
                  f"ppl {record['train_ppl']:8.2f}  val loss {record['val_loss']:.4f} ppl {record['val_ppl']:8.2f}"
                  f"{'  (best)' if self.improved else ''}  {format_duration(record['seconds'])} "
                  f"({record['tokens_per_s']:.0f} tokens/s)")
        if self.switch:
            # From the next epoch on, averaged SGD (the state of plain SGD has nothing it needs).
            self.optimizer = self._asgd()
            self.history[-1]["switched_to_asgd"] = True
            if distributed.is_main():
                save_checkpoint(self.run_dir / CHECKPOINT, self.state())
            self.echo(f"  validation loss {record['val_loss']:.4f} is above the best before the last {c.nonmono} "
                      "epochs: switching to averaged SGD")

    def end(self, finished: bool) -> LMTrainResult:
        # The final figures read best.pt, which rank 0 wrote: rank 0 measures them, the others are done.
        final = self.final_results() if finished and distributed.is_main() else None
        return LMTrainResult(self.run_dir, self.epoch, finished, self.history, self.best, final)

    def final_results(self) -> dict:
        """Validation and test perplexity of best.pt (the paper reports the model best on validation)."""
        result = evaluate_lm_checkpoint(self.run_dir / BEST, device=str(self.device), corpus=self.corpus,
                                        splits=("valid", "test"))
        atomic_write_json(self.run_dir / "results.json", result)
        self.echo(f"best model (epoch {result['epoch']}): valid ppl {result['valid_ppl']:.2f}  test ppl "
                  f"{result['test_ppl']:.2f}")
        return result


def resume_lm_training(run_dir, state: dict, echo=print, **changes) -> LMTrainRun:
    """Continue a language model's run from its loaded checkpoint `state` (resume_training checks and loads it)."""
    config = TrainConfig.from_dict({**state["config"], **changes})
    genotype = RecurrentGenotype.from_dict(state["model_hparams"]["genotype"])
    run = LMTrainRun(config, run_dir, echo, genotype=genotype, vocab=Vocabulary(state["vocab"]))
    run.load_state(state)
    return run


# ----------------------------------------------------------------------------------------------------------------
# evaluation of a trained language model
# ----------------------------------------------------------------------------------------------------------------
def load_lm(path, map_location="cpu", state: dict | None = None) -> tuple[RNNModel, dict]:
    """The language model in a model file (best.pt / last.pt), an LM training checkpoint, or a run directory;
    `state`: that file, already loaded."""
    p = Path(path)
    if p.is_dir():
        p = p / BEST if (p / BEST).is_file() else p / CHECKPOINT
    state = state if state is not None else load_checkpoint(resolve_checkpoint(p), map_location=map_location)
    if state.get("model_hparams", {}).get("kind") != "rnn" or "vocab" not in state:
        raise DartsNasError(f"{p} does not hold a trained language model")
    try:
        model = RNNModel.from_hparams(state["model_hparams"])
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError) as e:
        raise DartsNasError(f"{p}: the checkpoint does not hold a usable language model: "
                            f"{str(e).splitlines()[0][:200]}") from None
    return model, state


def evaluate_lm_checkpoint(path, device="auto", data=None, dataset=None, batch_size=None, echo=print,
                           corpus: Corpus | None = None, splits=("valid", "test"), state: dict | None = None) -> dict:
    """Perplexity of a trained language model on the valid and test splits of its corpus (or another directory in
    the same layout, whose words must all be in the model's vocabulary). `state`: the file load_lm reads, loaded."""
    model, state = load_lm(path, state=state)
    config = TrainConfig.from_dict(state["config"])
    dev = resolve_device(device)
    if corpus is None:
        name = dataset or config.dataset
        corpus = load_text(name, data or config.data, vocab=Vocabulary(state["vocab"]))
        echo(f"note: {corpus.describe()}")
    model.to(dev).eval()
    out = {"epoch": state.get("epoch"), "dataset": corpus.name, "params": parameter_count(model)}
    for split in splits:
        bs = batch_size or (config.eval_batch_size if split == "valid" else config.test_batch_size)
        source = batchify(getattr(corpus, split), bs, dev)
        loss = stream_loss(lambda b: lm_loss(model, b), source, config.bptt, model.init_hidden(bs, dev))
        out[f"{split}_loss"], out[f"{split}_ppl"] = loss, perplexity(loss)
    return out
