"""Sequence-to-sequence data for the reversible Transformer space: synthetic tasks, parallel text files,
tokenizers, padded batches and BLEU.

Datasets (``--dataset``):

- ``copy``, ``reverse``, ``sort``: synthetic translation tasks. A source is a random sequence of symbols
  ``s0 .. s{K-1}`` (K = ``--task-symbols``) of length ``--min-length`` to ``--max-length``; the target is the
  same sequence, reversed, or sorted. ``--task-size`` training pairs and an eighth of that each for valid and
  test, generated from the run's seed (each split from its own stream), word-tokenized.
- ``parallel``: ``--data DIR`` holds ``train.src``/``train.tgt``, ``valid.src``/``valid.tgt`` and
  ``test.src``/``test.tgt``, one sentence per line, line i of ``.src`` translating to line i of ``.tgt``. They are
  tokenized by a joint subword model that sentencepiece trains on the training files (``--tokenizer
  sentencepiece``, ``--subword-vocab`` pieces; the ``seq2seq`` extra), or by whitespace (``--tokenizer word``).

Ids 0..3 are padding, BOS, EOS and unknown. A batch is ``(src [B, S], tgt_in [B, T], tgt_out [B, T])``: the
target with BOS prepended as the decoder's input and with EOS appended as what it predicts, padded with 0 to the
batch's longest. A run pads each split once into device tensors (:class:`DevicePairs`) and gathers each
epoch's shuffled batches from them by index on the device; ``length_buckets`` sorts the pairs by length within
windows of batches first, to pad less. BLEU is sacrebleu's corpus BLEU on detokenized text (the ``seq2seq`` extra).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DartsNasError
from ..settings import SettingsGroup, setting

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
SYNTHETIC_TASKS = ("copy", "reverse", "sort")
SEQ2SEQ_DATASETS: tuple[str, ...] = SYNTHETIC_TASKS + ("parallel",)
SPLITS = ("train", "valid", "test")
TOKENIZERS = ("sentencepiece", "word")


@dataclass
class Seq2SeqSettings(SettingsGroup):
    """The sequence-to-sequence data's fields (the reversible Transformer space), shared by search and training."""

    POSITIVE = ("task_size", "task_symbols", "subword_vocab", "max_tokens")

    task_size: int = setting(4096, "synthetic tasks (copy, reverse, sort): training pairs (valid and test: an eighth "
                           "each)")
    min_length: int = setting(3, "synthetic tasks: shortest source sequence")
    max_length: int = setting(12, "synthetic tasks: longest source sequence")
    task_symbols: int = setting(16, "synthetic tasks: distinct symbols")
    tokenizer: str = setting("sentencepiece", "--dataset parallel: a joint subword model trained on the training text "
                           "(sentencepiece, the seq2seq extra) or whitespace words", TOKENIZERS)
    subword_vocab: int = setting(8000, "--dataset parallel with sentencepiece: pieces in the subword vocabulary")
    max_tokens: int = setting(256, "sequence-to-sequence: longest source or target kept, in tokens (longer ones are cut)")
    length_buckets: int = setting(0, "sequence-to-sequence: sort the shuffled pairs by length within windows of N "
                                  "batches before batching, so that a batch pads less (0: off, batches in random order)")


def require_seq2seq_extra(what: str):
    """Import sentencepiece and sacrebleu, or one clear message."""
    try:
        import sacrebleu  # noqa: F401
        import sentencepiece  # noqa: F401
    except ImportError:
        raise DartsNasError(f"{what} needs the seq2seq extra: pip install 'darts-nas[seq2seq]' (it installs "
                            "sentencepiece and sacrebleu)") from None


def synthetic_pairs(task: str, count: int, min_len: int, max_len: int, symbols: int, seed: int):
    """`count` (source, target) text pairs of a synthetic task, from a generator seeded by `seed`."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (count,), generator=g).tolist()
    pairs = []
    for n in lengths:
        seq = torch.randint(0, symbols, (n,), generator=g).tolist()
        out = seq if task == "copy" else seq[::-1] if task == "reverse" else sorted(seq)
        pairs.append((" ".join(f"s{t}" for t in seq), " ".join(f"s{t}" for t in out)))
    return pairs


class WordTokenizer:
    """Whitespace tokens; the vocabulary is the training text's tokens in order of first appearance."""

    kind = "word"

    def __init__(self, words):
        self.words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def train(cls, lines) -> "WordTokenizer":
        seen: dict[str, None] = {}
        for line in lines:
            for w in line.split():
                seen.setdefault(w, None)
        return cls(seen)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, line: str) -> list[int]:
        return [self.index.get(w, UNK) for w in line.split()]

    def decode(self, ids) -> str:
        return " ".join(self.words[i] for i in ids if i >= len(SPECIALS) or i == UNK)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "words": self.words[len(SPECIALS):]}


class SentencePieceTokenizer:
    """A joint subword model trained by sentencepiece (unigram) on the training source and target text."""

    kind = "sentencepiece"

    def __init__(self, model: bytes):
        require_seq2seq_extra("--tokenizer sentencepiece")
        import sentencepiece as spm

        self.model = bytes(model)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model)

    @classmethod
    def train(cls, lines, vocab_size: int) -> "SentencePieceTokenizer":
        require_seq2seq_extra("--tokenizer sentencepiece")
        import sentencepiece as spm

        with tempfile.TemporaryDirectory() as tmp:
            text = Path(tmp) / "train.txt"
            text.write_text("\n".join(lines) + "\n", encoding="utf-8")
            prefix = str(Path(tmp) / "sp")
            try:
                spm.SentencePieceTrainer.train(
                    input=str(text), model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
                    character_coverage=1.0, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
                    hard_vocab_limit=False, minloglevel=2)
            except RuntimeError as e:
                raise DartsNasError(f"sentencepiece could not train a {vocab_size}-piece model on the training "
                                    f"text: {str(e).splitlines()[0][:200]}") from None
            return cls(Path(prefix + ".model").read_bytes())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, line: str) -> list[int]:
        return list(self.sp.encode(line))

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) > EOS])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": list(self.model)}


def tokenizer_from_dict(d: dict):
    if not isinstance(d, dict) or d.get("kind") not in TOKENIZERS:
        raise DartsNasError("not a tokenizer record")
    if d["kind"] == "word":
        return WordTokenizer(d["words"])
    return SentencePieceTokenizer(bytes(d["model"]))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DartsNasError(f"{path} is missing (a parallel corpus is DIR/{{train,valid,test}}.{{src,tgt}})") \
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise DartsNasError(f"{path}: cannot read it as UTF-8 text ({e})") from None


@dataclass
class Seq2SeqCorpus:
    """A tokenized parallel corpus: per split, the source and target texts and their ids."""

    name: str
    tokenizer: object
    text: dict   # split -> (source lines, target lines)
    ids: dict    # split -> (source id lists, target id lists)

    def describe(self) -> str:
        sizes = ", ".join(f"{s} {len(self.text[s][0]):,}" for s in SPLITS)
        return f"{self.name}: {sizes} pairs; {self.tokenizer.kind} vocabulary {len(self.tokenizer):,}"


def load_seq2seq(config, tokenizer=None) -> Seq2SeqCorpus:
    """The corpus a config names (its dataset, data directory, task and tokenizer settings); `tokenizer` (a saved
    one, when resuming or evaluating) replaces training a new one."""
    name = config.dataset
    if name in SYNTHETIC_TASKS:
        if not 1 <= config.min_length <= config.max_length:
            raise DartsNasError("--min-length must be at least 1 and at most --max-length")
        sizes = {"train": config.task_size, "valid": max(config.task_size // 8, 1),
                 "test": max(config.task_size // 8, 1)}
        text = {}
        for k, split in enumerate(SPLITS):
            pairs = synthetic_pairs(name, sizes[split], config.min_length, config.max_length, config.task_symbols,
                                    config.seed * 10 + k)
            text[split] = ([p[0] for p in pairs], [p[1] for p in pairs])
        tokenizer = tokenizer or WordTokenizer.train(text["train"][0] + text["train"][1])
    elif name == "parallel":
        root = Path(config.data).expanduser()
        if not root.is_dir():
            raise DartsNasError(f"--data {root}: not a directory (a parallel corpus is DIR/{{train,valid,test}}."
                                "{src,tgt})")
        text = {}
        for split in SPLITS:
            src, tgt = _read_lines(root / f"{split}.src"), _read_lines(root / f"{split}.tgt")
            if len(src) != len(tgt):
                raise DartsNasError(f"{root}: {split}.src has {len(src)} lines and {split}.tgt {len(tgt)}; they "
                                    "must pair line by line")
            if not src:
                raise DartsNasError(f"{root}: {split}.src is empty")
            text[split] = (src, tgt)
        if config.limit:
            text["train"] = (text["train"][0][:config.limit], text["train"][1][:config.limit])
        if tokenizer is None:
            lines = text["train"][0] + text["train"][1]
            tokenizer = (SentencePieceTokenizer.train(lines, config.subword_vocab)
                         if config.tokenizer == "sentencepiece" else WordTokenizer.train(lines))
    else:
        raise DartsNasError(f"{name!r} is not a sequence-to-sequence dataset ({', '.join(SEQ2SEQ_DATASETS)})")
    ids = {s: ([tokenizer.encode(x)[:config.max_tokens] for x in src], [tokenizer.encode(y)[:config.max_tokens - 1]
                                                                       for y in tgt])
           for s, (src, tgt) in text.items()}
    return Seq2SeqCorpus(name, tokenizer, text, ids)


def pad_batch(seqs: list[list[int]], prefix: int | None = None, suffix: int | None = None,
              device=None) -> torch.Tensor:
    rows = [([prefix] if prefix is not None else []) + list(s) + ([suffix] if suffix is not None else [])
            for s in seqs]
    width = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out if device is None else out.to(device)


def make_batch(src_ids, tgt_ids, device):
    """(src, tgt_in, tgt_out) of lists of ids."""
    return (pad_batch(src_ids, device=device), pad_batch(tgt_ids, prefix=BOS, device=device),
            pad_batch(tgt_ids, suffix=EOS, device=device))


def batches(pairs, batch_size: int, device, generator: torch.Generator | None = None, drop_last: bool = True,
            length_buckets: int = 0) -> "EpochBatches":
    """The padded batches of (source ids, target ids) lists, shuffled by `generator` (None: in order); see
    :class:`DevicePairs` (a run builds that once per split and reuses it)."""
    return DevicePairs(pairs, device).epoch(batch_size, generator, drop_last, length_buckets)


class DevicePairs:
    """A split's pairs padded once into device tensors (source, decoder input with BOS, target with EOS, each
    [pairs, longest]); an epoch's batches are gathered from them by index on the device, each cut to its own
    longest sequence, so a batch is exactly what padding its pairs alone gives. Lengths stay on the host: the
    widths of a whole epoch come from them without reading the device."""

    def __init__(self, pairs, device):
        src, tgt = pairs
        self.device = device
        self.src = pad_batch(src, device=device)
        self.tgt_in = pad_batch(tgt, prefix=BOS, device=device)
        self.tgt_out = pad_batch(tgt, suffix=EOS, device=device)
        self.src_len = torch.tensor([max(len(x), 1) for x in src], dtype=torch.long)
        self.tgt_len = torch.tensor([len(y) + 1 for y in tgt], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.src_len)

    def epoch(self, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = True,
              length_buckets: int = 0) -> "EpochBatches":
        """The batches of an epoch: pairs in the order of one permutation drawn from `generator` (None: in
        order), cut in `batch_size` (the last, smaller one dropped with `drop_last`). `length_buckets` N > 0: the
        pairs of each window of N batches are first sorted by length (less padding), and the batches of the epoch
        then shuffled by `generator`; 0 (the default) leaves the permutation's batches as they are."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        order = order[:stop]
        if length_buckets > 0:
            order = bucket_by_length(order, self.src_len + self.tgt_len, batch_size, length_buckets, generator)
        return EpochBatches(self, order, batch_size)


def bucket_by_length(order: torch.Tensor, lengths: torch.Tensor, batch_size: int, window_batches: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """`order` with the pairs of each window of `window_batches` batches sorted by `lengths` (stable), then its
    full batches shuffled by `generator` (a ragged last batch stays last): batches of similar lengths, padded
    less, in a random order."""
    window = batch_size * window_batches
    parts = []
    for k in range(0, len(order), window):
        chunk = order[k:k + window]
        parts.append(chunk[torch.argsort(lengths[chunk], stable=True)])
    order = torch.cat(parts) if parts else order
    full = len(order) // batch_size
    if generator is None or full < 2:
        return order
    rows = order[:full * batch_size].view(full, batch_size)[torch.randperm(full, generator=generator)]
    return torch.cat([rows.reshape(-1), order[full * batch_size:]])


def batch_widths(order: torch.Tensor, src_len: torch.Tensor, tgt_len: torch.Tensor,
                 batch_size: int) -> list[tuple[int, int]]:
    """(source width, target width) of each batch of `order`: its longest sequences, for the whole epoch in one
    pass over host tensors."""
    full = len(order) // batch_size * batch_size
    widths = []
    for lengths in (src_len[order], tgt_len[order]):
        w = lengths[:full].view(-1, batch_size).amax(1).tolist() if full else []
        widths.append(w + ([int(lengths[full:].max())] if full < len(order) else []))
    return list(zip(*widths))


class EpochBatches(Sequence):
    """An epoch's (src, tgt_in, tgt_out) batches, gathered on the device when indexed. The order moves to the
    device once; the per-batch widths are computed on the host for the whole epoch at once."""

    def __init__(self, pairs: DevicePairs, order: torch.Tensor, batch_size: int):
        self.pairs = pairs
        self.starts = list(range(0, len(order), batch_size))
        self.size = batch_size
        self.order = order.to(pairs.device)
        self.widths = batch_widths(order, pairs.src_len, pairs.tgt_len, batch_size)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k %= len(self)
        idx = self.order[self.starts[k]:self.starts[k] + self.size]
        ws, wt = self.widths[k]
        p = self.pairs
        return (p.src.narrow(1, 0, ws).index_select(0, idx), p.tgt_in.narrow(1, 0, wt).index_select(0, idx),
                p.tgt_out.narrow(1, 0, wt).index_select(0, idx))


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacrebleu's corpus BLEU (0-100)."""
    require_seq2seq_extra("BLEU")
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)
