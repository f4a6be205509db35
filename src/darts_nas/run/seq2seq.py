"""Runs of the reversible Transformer: the search on sequence-to-sequence data (:class:`Seq2SeqSearchRun`, the
search loop of :class:`~darts_nas.run.search.SearchRun` on padded (src, tgt_in, tgt_out) batches), training a
derived :class:`~darts_nas.genotypes.TransformerArch` from scratch (:class:`TransformerTrainRun`: translation with
BLEU, or a decoder-only language model with perplexity) and evaluating a trained one.

The search trains the weights on the training pairs and the alphas on the validation pairs (the text search's
rule: the training split is not cut in two). Batches are shuffled by generators seeded by (seed, epoch) and
dropout masks drawn from the default generator reseeded per epoch, so a resumed run replays an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from ..config import TrainConfig
from ..data.seq2seq import BOS, EOS, PAD, DevicePairs, corpus_bleu, load_seq2seq, pad_batch, tokenizer_from_dict
from ..data.text import Vocabulary, batchify, bptt_windows, window
from ..errors import DartsNasError
from ..fileio import atomic_write_json
from ..genotypes import TransformerArch, load_transformer_arch
from ..nets.rnn import lm_cross_entropy
from ..nets.transformer import beam_decode, greedy_decode, seq2seq_loss, transformer_from_arch
from .checkpoint import BEST, CHECKPOINT, MODEL_KIND, TRANSFORMER_TRAIN_KIND, load_checkpoint, resolve_checkpoint
from .common import (cosine_lr, epoch_seed, genotype_label, resolve_device, restore_states, run_token_steps,
                     save_training_files, set_lr, write_training_start)
from .log import format_duration
from .loop import EpochRun
from .lm import load_text, perplexity, stream_loss
from .search import SearchRun, build_search_model


def _single_process(what: str) -> None:
    if distributed.active():
        raise DartsNasError(f"{what} runs in one process; torchrun is not supported for it yet")


def split_pairs(corpus, device) -> dict:
    """The training and validation pairs of a corpus, padded once on the device (:class:`DevicePairs`)."""
    return {split: DevicePairs(corpus.ids[split], device) for split in ("train", "valid")}


@torch.no_grad()
def batch_loss_and_accuracy(loss_fn, items) -> tuple[float, float]:
    """Token-weighted mean loss and next-token accuracy over (src, tgt_in, tgt_out) batches; `loss_fn(batch) ->
    (loss, logits)`."""
    sums = torch.zeros(3, dtype=torch.float64, device=items[0][0].device if items else "cpu")
    for batch in items:
        loss, logits = loss_fn(batch)
        mask = batch[2] != PAD
        n = mask.sum()
        sums[0] += loss.double() * n
        sums[1] += ((logits.argmax(-1) == batch[2]) & mask).sum()
        sums[2] += n
    loss_sum, correct, n = sums.tolist()
    return loss_sum / max(n, 1), correct / max(n, 1)


# ----------------------------------------------------------------------------------------------------------------
# search
# ----------------------------------------------------------------------------------------------------------------
class Seq2SeqSearchRun(SearchRun):
    """The reversible Transformer search on translation pairs: weights on the training pairs, alphas on the
    validation pairs."""

    def setup_data(self) -> None:
        _single_process("a sequence-to-sequence search")
        c = self.config
        self.corpus = load_seq2seq(c)
        self.echo(f"note: {self.corpus.describe()}")
        self.steps = len(self.corpus.ids["train"][0]) // c.batch_size
        if self.steps == 0 or len(self.corpus.ids["valid"][0]) < c.batch_size:
            raise DartsNasError(f"{self.corpus.describe()}: no full batch of {c.batch_size} in the training or the "
                                "validation pairs; lower --batch-size")
        self.pairs = split_pairs(self.corpus, self.device)
        self.val_batches = self.pairs["valid"].epoch(c.batch_size)  # in order: validation, Hessian estimate

    def build_model(self):
        return build_search_model(self.config, vocab_size=len(self.corpus.tokenizer))

    def data_text(self) -> str:
        return (f"{self.config.dataset} ({len(self.corpus.ids['train'][0]):,} pairs for weights / "
                f"{len(self.corpus.ids['valid'][0]):,} for alphas, vocabulary {len(self.corpus.tokenizer):,})")

    @staticmethod
    def metrics_text(r: dict) -> str:
        return (f"train loss {r['train_loss']:.4f}  val loss {r['val_loss']:.4f} ppl {r['val_ppl']:.2f} "
                f"token acc {100 * r['val_acc']:5.2f}%")

    def speed_text(self) -> str:
        return ""

    def state(self) -> dict:
        return {**super().state(), "tokenizer": self.corpus.tokenizer.to_dict()}

    def load_state(self, state: dict) -> None:
        if state.get("tokenizer") is not None and state["tokenizer"] != self.corpus.tokenizer.to_dict():
            raise DartsNasError("the data's tokenizer differs from the one this search started with (the "
                                "training files changed?)")
        super().load_state(state)

    def train_epoch(self, epoch: int, lr: float) -> dict:
        c, model, dev = self.config, self.model, self.device
        update_alphas = self.start_epoch(epoch, lr)
        buckets = c.length_buckets
        train = self.pairs["train"].epoch(c.batch_size, torch.Generator().manual_seed(epoch_seed(c.seed, epoch, 0)),
                                          length_buckets=buckets)
        use_val = update_alphas and self.strategy.uses_val_batch
        val = self.pairs["valid"].epoch(c.batch_size, torch.Generator().manual_seed(epoch_seed(c.seed, epoch, 1)),
                                        length_buckets=buckets) if use_val else None

        def step(k_batch):
            k, batch = k_batch
            loss, _, _ = self.strategy.step(model, batch, val[k % len(val)] if use_val else None, self.w_opt,
                                            self.a_opt, lr, c.grad_clip, update_alphas)
            return loss

        loss = run_token_steps(step, list(enumerate(train)), f"epoch {epoch + 1}/{c.epochs}", c.log_every,
                               c.progress, lambda value, i: self.check_finite(value, epoch, i), dev)
        return {"train_loss": loss}

    def validate(self) -> dict:
        self.model.eval()
        try:
            loss, acc = batch_loss_and_accuracy(self.model.loss, self.val_batches)
        finally:
            self.model.train()
        return {"val_loss": loss, "val_ppl": perplexity(loss), "val_acc": acc}

    def signal_batches(self, count: int) -> list:
        return self.val_batches[:count]


# ----------------------------------------------------------------------------------------------------------------
# training a derived Transformer from scratch
# ----------------------------------------------------------------------------------------------------------------
def model_hparams(arch: TransformerArch, vocab_size: int, c: TrainConfig) -> dict:
    return {"kind": "transformer", "genotype": arch.to_dict(), "vocab_size": vocab_size, "d_model": c.d_model,
            "dropout": c.model_dropout, "reversible": c.reversible}


def transformer_from_hparams(h: dict):
    arch = TransformerArch.from_dict(h["genotype"])
    return transformer_from_arch(arch, h["vocab_size"], h["d_model"], h["dropout"], h["reversible"])


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def decode_split(model, corpus, split: str, beam: int, batch_size: int, device, limit: int = 0):
    """(hypotheses, references) of a split's sources, decoded greedily (beam 1) or by beam search, as text."""
    src_ids, _ = corpus.ids[split]
    refs = corpus.text[split][1]
    n = len(src_ids) if not limit else min(limit, len(src_ids))
    hyps = []
    model.eval()
    for k in range(0, n, batch_size):
        src = pad_batch(src_ids[k:k + batch_size], device=device)
        max_len = min(int(src.shape[1] * 1.5) + 10, 512)
        out = greedy_decode(model, src, BOS, EOS, max_len) if beam <= 1 else \
            beam_decode(model, src, BOS, EOS, max_len, beam)
        for row in out.tolist():
            ids = row[:row.index(EOS)] if EOS in row else row
            hyps.append(corpus.tokenizer.decode([i for i in ids if i != PAD]))
    return hyps, refs[:n]


@dataclass
class TransformerTrainResult:
    run_dir: Path
    epochs_done: int
    finished: bool
    history: list
    best: dict | None
    final: dict | None = None


class TransformerTrainRun(EpochRun):
    """Training a derived reversible Transformer from scratch: Adam (0.9, 0.98), linear warm-up over
    --warmup-steps then the epoch schedule (cosine or constant), gradient clipping, label smoothing; checkpoint
    every epoch. Translation: validation loss and greedy BLEU each epoch, best.pt by BLEU, and at the end the
    best model's test BLEU greedy and with --beam. Language model: windows of --bptt tokens, best.pt by
    validation perplexity, valid and test perplexity at the end."""

    def __init__(self, config: TrainConfig, run_dir, echo=print, genotype: TransformerArch | None = None,
                 tokenizer=None, vocab: Vocabulary | None = None):
        _single_process("training a Transformer")
        self.config = c = config.validate()
        self.run_dir = Path(run_dir)
        self.echo = echo
        self.device = dev = resolve_device(c.device)
        self.genotype = genotype if genotype is not None else load_transformer_arch(c.genotype)
        self.lm = self.genotype.language_model
        if self.lm:
            self.corpus = load_text(c.dataset, c.data, c.limit, vocab)
            if vocab is not None and self.corpus.vocab != vocab:
                raise DartsNasError(f"the vocabulary of {c.data} is not the one this run was trained with")
            echo(f"note: {self.corpus.describe()}")
            vocab_size = len(self.corpus.vocab)
            self.train_data = batchify(self.corpus.train, c.batch_size, dev)
            self.val_data = batchify(self.corpus.valid, c.eval_batch_size, dev)
        else:
            self.corpus = load_seq2seq(c, tokenizer)
            echo(f"note: {self.corpus.describe()}")
            vocab_size = len(self.corpus.tokenizer)
            if len(self.corpus.ids["train"][0]) < c.batch_size:
                raise DartsNasError(f"{len(self.corpus.ids['train'][0])} training pairs give no batch of "
                                    f"{c.batch_size}; lower --batch-size")
            self.pairs = split_pairs(self.corpus, dev)
            self.val_batches = self.pairs["valid"].epoch(c.batch_size)
        torch.manual_seed(c.seed)
        self.model = transformer_from_arch(self.genotype, vocab_size, c.d_model, c.model_dropout,
                                           c.reversible).to(dev)
        self.hparams = model_hparams(self.genotype, vocab_size, c)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, betas=(0.9, 0.98), eps=1e-9,
                                          weight_decay=c.weight_decay)
        self.steps_done = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None

    # -- persistence -----------------------------------------------------------------------------------------
    def data_record(self) -> dict:
        return {"vocab": self.corpus.vocab.words} if self.lm else {"tokenizer": self.corpus.tokenizer.to_dict()}

    def model_file_state(self, record: dict) -> dict:
        return {"kind": MODEL_KIND, "version": 1, "model_hparams": self.hparams, "model": self.model.state_dict(),
                "epoch": self.epoch, "metrics": record, "config": self.config.to_dict(), **self.data_record()}

    def state(self) -> dict:
        return {"kind": TRANSFORMER_TRAIN_KIND, "version": 1, "epoch": self.epoch, "config": self.config.to_dict(),
                "model_hparams": self.hparams, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "steps_done": self.steps_done, "history": self.history,
                "best": self.best, **self.data_record()}

    def load_state(self, state: dict) -> None:
        restore_states(state, {"model": self.model, "optimizer": self.optimizer}, "Transformer")
        self.epoch = int(state["epoch"])
        self.steps_done = int(state.get("steps_done", 0))
        self.history = list(state["history"])
        self.best = state.get("best")

    def save(self) -> None:
        save_training_files(self.run_dir, self.model_file_state(self.history[-1]), self.state(), self.history,
                            self.improved)

    # -- the loop --------------------------------------------------------------------------------------------
    def lr(self, epoch: int) -> float:
        c = self.config
        return c.lr if c.lr_schedule == "constant" else cosine_lr(epoch, c.epochs, c.lr, c.lr_min)

    def _items(self, epoch: int):
        c = self.config
        g = torch.Generator().manual_seed(epoch_seed(c.seed, epoch, 0))
        if self.lm:
            return [window(self.train_data, s, n) for s, n in bptt_windows(self.train_data.shape[0], c.bptt, fixed=True)]
        return self.pairs["train"].epoch(c.batch_size, g, length_buckets=c.length_buckets)

    def _loss(self, item):
        c = self.config
        if self.lm:
            x, y = item
            return lm_cross_entropy(self.model(x.t(), None).transpose(0, 1), y)
        src, tgt_in, tgt_out = item
        return seq2seq_loss(self.model(src, tgt_in), tgt_out, c.label_smoothing)

    def train_epoch(self, epoch: int) -> float:
        c, model, opt = self.config, self.model, self.optimizer
        torch.manual_seed(epoch_seed(c.seed, epoch, 2))  # dropout masks
        base = self.lr(epoch)
        params = list(model.parameters())
        model.train()

        def step(item):
            self.steps_done += 1
            warm = min(1.0, self.steps_done / c.warmup_steps) if c.warmup_steps else 1.0
            set_lr(opt, base * warm)
            loss = self._loss(item)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, c.grad_clip, foreach=True)
            opt.step()
            return loss.detach()

        return run_token_steps(step, self._items(epoch), f"epoch {epoch + 1}/{c.epochs}", c.log_every, c.progress,
                               lambda value, i: self.check_finite(value, epoch, i), self.device)

    def validate(self) -> dict:
        c = self.config
        self.model.eval()
        try:
            if self.lm:
                loss = stream_loss(lambda b: (lm_cross_entropy(self.model(b[0].t(), None).transpose(0, 1), b[1]),
                                              b[2]), self.val_data, c.bptt, torch.zeros(0, device=self.device))
                return {"val_loss": loss, "val_ppl": perplexity(loss)}
            loss, acc = batch_loss_and_accuracy(self.eval_loss, self.val_batches)
            hyps, refs = decode_split(self.model, self.corpus, "valid", 1, c.batch_size, self.device)
            return {"val_loss": loss, "val_ppl": perplexity(loss), "val_acc": acc, "val_bleu": corpus_bleu(hyps, refs)}
        finally:
            self.model.train()

    def eval_loss(self, batch):
        """(loss, logits) of a validation batch: one forward, the logits serving the loss and the accuracy."""
        logits = self.model(batch[0], batch[1])
        return seq2seq_loss(logits, batch[2]), logits

    def describe(self) -> str:
        c = self.config
        what = "decoder-only language model" if self.lm else "encoder-decoder"
        data = (f"{len(self.corpus.vocab):,} words, {self.corpus.train.numel():,} training tokens, BPTT {c.bptt}"
                if self.lm else f"{len(self.corpus.ids['train'][0]):,} training pairs, vocabulary "
                                f"{len(self.corpus.tokenizer):,}")
        return (f"train: {genotype_label(c.genotype)} reversible Transformer ({what}, {self.genotype.splits} splits, "
                f"d {c.d_model}, {'reconstructing backward' if c.reversible else 'plain autograd'}): "
                f"{parameter_count(self.model) / 1e6:.2f}M params; {c.dataset}: {data}, batch {c.batch_size}; "
                f"{self.device} -> {self.run_dir}")

    def begin(self) -> None:
        write_training_start(self.run_dir, self.config, {"hparams": self.hparams,
                                                         "params": parameter_count(self.model)}, self.genotype)
        self.echo(self.describe())

    def run_epoch(self, epoch: int) -> dict:
        t0 = time.perf_counter()
        train_loss = self.train_epoch(epoch)
        self.check_finite(train_loss, epoch, 0)
        train_seconds = time.perf_counter() - t0
        metrics = self.validate()
        record = {"epoch": epoch + 1, "lr": self.lr(epoch), "train_loss": train_loss,
                  "train_ppl": perplexity(train_loss), **metrics, "train_seconds": round(train_seconds, 3)}
        key, better = ("val_loss", lambda a, b: a < b) if self.lm else ("val_bleu", lambda a, b: a > b)
        self.improved = self.best is None or better(metrics[key], self.best[key])
        if self.improved:
            self.best = {"epoch": epoch + 1, **metrics}
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return record

    def report(self, r: dict) -> None:
        extra = f"  token acc {100 * r['val_acc']:5.2f}%  BLEU {r['val_bleu']:6.2f}" if "val_bleu" in r else ""
        self.echo(f"epoch {r['epoch']:4d}/{self.config.epochs}  train loss {r['train_loss']:.4f}  val loss "
                  f"{r['val_loss']:.4f} ppl {r['val_ppl']:8.2f}{extra}{'  (best)' if self.improved else ''}  "
                  f"{format_duration(r['seconds'])}")

    def end(self, finished: bool) -> TransformerTrainResult:
        final = self.final_results() if finished else None
        return TransformerTrainResult(self.run_dir, self.epoch, finished, self.history, self.best, final)

    def final_results(self) -> dict:
        result = evaluate_transformer_checkpoint(self.run_dir / BEST, device=str(self.device),
                                                 beam=self.config.beam, corpus=self.corpus, echo=lambda *_: None)
        atomic_write_json(self.run_dir / "results.json", result)
        self.echo(final_text(result))
        return result


def final_text(result: dict) -> str:
    if "test_ppl" in result:
        return (f"best model (epoch {result['epoch']}): valid ppl {result['valid_ppl']:.2f}  test ppl "
                f"{result['test_ppl']:.2f}")
    return (f"best model (epoch {result['epoch']}): test BLEU {result['test_bleu_greedy']:.2f} greedy, "
            f"{result['test_bleu_beam']:.2f} beam {result['beam']}  (valid BLEU greedy {result['valid_bleu_greedy']:.2f})")


def resume_transformer_training(run_dir, state: dict, echo=print, **changes) -> TransformerTrainRun:
    config = TrainConfig.from_dict({**state["config"], **changes})
    genotype = TransformerArch.from_dict(state["model_hparams"]["genotype"])
    tokenizer = tokenizer_from_dict(state["tokenizer"]) if "tokenizer" in state else None
    vocab = Vocabulary(state["vocab"]) if "vocab" in state else None
    run = TransformerTrainRun(config, run_dir, echo, genotype=genotype, tokenizer=tokenizer, vocab=vocab)
    run.load_state(state)
    return run


# ----------------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------------
def load_transformer(path, map_location="cpu", state: dict | None = None):
    """The Transformer of a model file, a training checkpoint or a run directory (its best.pt); `state`: that
    file, already loaded."""
    p = Path(path)
    if p.is_dir():
        p = p / BEST if (p / BEST).is_file() else p / CHECKPOINT
    state = state if state is not None else load_checkpoint(resolve_checkpoint(p), map_location=map_location)
    if state.get("model_hparams", {}).get("kind") != "transformer":
        raise DartsNasError(f"{p} does not hold a trained Transformer")
    try:
        model = transformer_from_hparams(state["model_hparams"])
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError) as e:
        raise DartsNasError(f"{p}: the checkpoint does not hold a usable Transformer: "
                            f"{str(e).splitlines()[0][:200]}") from None
    return model, state


def evaluate_transformer_checkpoint(path, device="auto", data=None, beam: int | None = None, corpus=None,
                                    echo=print, state: dict | None = None) -> dict:
    """A trained Transformer's figures: valid and test perplexity (a language model), or valid greedy BLEU and
    test BLEU greedy and by beam search (translation), on its data (or `data`, in the same layout). `state`: the
    file load_transformer reads, already loaded."""
    model, state = load_transformer(path, state=state)
    config = TrainConfig.from_dict({**state["config"], **({"data": data} if data else {})})
    dev = resolve_device(device)
    model.to(dev).eval()
    out = {"epoch": state.get("epoch"), "dataset": config.dataset, "params": parameter_count(model)}
    if "vocab" in state:
        if corpus is None:
            corpus = load_text(config.dataset, config.data, vocab=Vocabulary(state["vocab"]))
            echo(f"note: {corpus.describe()}")
        for split in ("valid", "test"):
            source = batchify(getattr(corpus, split), config.eval_batch_size, dev)
            loss = stream_loss(lambda b: (lm_cross_entropy(model(b[0].t(), None).transpose(0, 1), b[1]), b[2]),
                               source, config.bptt, torch.zeros(0, device=dev))
            out[f"{split}_loss"], out[f"{split}_ppl"] = loss, perplexity(loss)
        return out
    if corpus is None:
        corpus = load_seq2seq(config, tokenizer_from_dict(state["tokenizer"]))
        echo(f"note: {corpus.describe()}")
    beam = beam or config.beam
    bs = config.batch_size
    out["valid_bleu_greedy"] = corpus_bleu(*decode_split(model, corpus, "valid", 1, bs, dev))
    out["test_bleu_greedy"] = corpus_bleu(*decode_split(model, corpus, "test", 1, bs, dev))
    out["test_bleu_beam"] = corpus_bleu(*decode_split(model, corpus, "test", beam, bs, dev))
    out["beam"] = beam
    return out


__all__ = ["Seq2SeqSearchRun", "TransformerTrainRun", "evaluate_transformer_checkpoint", "final_text",
           "load_transformer", "resume_transformer_training"]
