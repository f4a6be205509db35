"""Word-level text corpora for the recurrent space (Penn Treebank, WikiText-2, or a user's own), batched the way the
DARTS and AWD-LSTM language models read them.

A corpus is three files (train, valid, test). Each line becomes its words plus one ``<eos>``; the vocabulary is the
training file's words in order of first appearance, so a word of the valid or test file that the training file
never has is an error (PTB and WikiText-2 already map rare words to ``<unk>``). ``batchify`` cuts the token stream
into ``batch_size`` parallel columns; ``bptt_windows`` walks down them in windows of random length (the paper's
rule: the BPTT length, halved with probability 0.05, plus normal noise of sd 5, at least 5 and at most BPTT +
max_seq_len_delta), which together cover every target token of the columns exactly once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DartsNasError

EOS = "<eos>"
# The file names of each layout; "text" is the layout for a user's own corpus.
TEXT_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "ptb": ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
    "wikitext-2": ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    "text": ("train.txt", "valid.txt", "test.txt"),
}
SPLITS = ("train", "valid", "test")
CORPORA: tuple[str, ...] = tuple(TEXT_LAYOUTS)  # the word-level corpora --dataset names
# Vocabulary sizes of the corpora the papers use (for sizing their language models without the files).
PAPER_VOCABULARIES = {"ptb": 10000, "wikitext-2": 33278}


class Vocabulary:
    """Words <-> indices, in order of first appearance in the training text."""

    def __init__(self, words=()):
        self.words: list[str] = []
        self.index: dict[str, int] = {}
        for w in words:
            self.add(w)

    def add(self, word: str) -> int:
        i = self.index.get(word)
        if i is None:
            i = self.index[word] = len(self.words)
            self.words.append(word)
        return i

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words


def _read_lines(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except FileNotFoundError:
        raise DartsNasError(f"corpus file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DartsNasError(f"cannot read corpus file {path}: {e}") from None


def tokenize(path, vocab: Vocabulary, grow: bool) -> torch.Tensor:
    """The token ids of a file (each line's words, then ``<eos>``). With ``grow`` new words join the vocabulary;
    without, a word outside it is an error naming the word, the file and the line."""
    path = Path(path)
    ids: list[int] = []
    for n, line in enumerate(_read_lines(path), 1):
        for w in line.split() + [EOS]:
            i = vocab.add(w) if grow else vocab.index.get(w)
            if i is None:
                raise DartsNasError(f"{path}, line {n}: the word {w[:40]!r} is not in the vocabulary of the training "
                                    f"file (map rare words to <unk> in every split, as PTB and WikiText-2 do)")
            ids.append(i)
    if not ids:
        raise DartsNasError(f"corpus file {path} is empty")
    return torch.tensor(ids, dtype=torch.long)


@dataclass
class Corpus:
    name: str
    root: Path
    vocab: Vocabulary
    train: torch.Tensor | None
    valid: torch.Tensor
    test: torch.Tensor

    def describe(self) -> str:
        sizes = ", ".join(f"{s} {len(getattr(self, s)):,}" for s in SPLITS if getattr(self, s) is not None)
        return f"{self.name} at {self.root}: vocabulary {len(self.vocab):,}, tokens {sizes}"


def corpus_files(name: str, root) -> tuple[Path, Path, Path]:
    if name not in TEXT_LAYOUTS:
        raise DartsNasError(f"unknown text dataset {name!r} (known: {', '.join(TEXT_LAYOUTS)})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DartsNasError(f"--data {root}: no such directory (a {name} corpus directory holds "
                            f"{', '.join(TEXT_LAYOUTS[name])})")
    files = tuple(root / f for f in TEXT_LAYOUTS[name])
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DartsNasError(f"--data {root}: missing {', '.join(missing)} (a {name} corpus directory holds "
                            f"{', '.join(TEXT_LAYOUTS[name])})")
    return files  # type: ignore[return-value]


def load_corpus(name: str, root, vocab: Vocabulary | None = None) -> Corpus:
    """Read a corpus directory. The vocabulary comes from its training file; given `vocab` (the one a model was
    trained with), the training file is not read and every word of valid and test must be in `vocab`."""
    train_f, valid_f, test_f = corpus_files(name, root)
    train = None
    if vocab is None:
        vocab = Vocabulary()
        train = tokenize(train_f, vocab, grow=True)
    return Corpus(name, Path(root), vocab, train, tokenize(valid_f, vocab, grow=False),
                  tokenize(test_f, vocab, grow=False))


def batchify(tokens: torch.Tensor, batch_size: int, device=None) -> torch.Tensor:
    """``[rows, batch_size]``: the token stream cut into `batch_size` contiguous columns (the remainder dropped),
    column b holding tokens ``b*rows .. (b+1)*rows - 1``."""
    rows = tokens.numel() // batch_size
    if rows < 2:
        raise DartsNasError(f"{tokens.numel()} tokens give fewer than 2 rows at batch size {batch_size}; lower the "
                            f"batch size or use a longer text")
    return tokens[: rows * batch_size].view(batch_size, rows).t().contiguous().to(device)


def sequence_length(bptt: int, max_delta: int, generator: torch.Generator) -> int:
    """The paper's random BPTT length: base `bptt` (halved with probability 0.05), plus N(0, 5) noise, truncated to
    an int, clipped to [5, bptt + max_delta]."""
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    base = bptt if u < 0.95 else bptt / 2
    noise = float(torch.randn(1, generator=generator, dtype=torch.float64))
    return min(max(5, int(base + 5.0 * noise)), bptt + max_delta)


def bptt_windows(rows: int, bptt: int, max_delta: int = 0, generator: torch.Generator | None = None,
                 fixed: bool = False) -> list[tuple[int, int]]:
    """(start row, length) of each window of an epoch over a ``[rows, B]`` batchified stream. Inputs are rows
    ``start .. start+length-1`` and targets the rows one below, so the targets of the windows are rows 1..rows-1,
    each exactly once. ``fixed`` uses length `bptt` throughout (evaluation)."""
    out, i = [], 0
    while i < rows - 1:
        n = bptt if fixed or generator is None else sequence_length(bptt, max_delta, generator)
        n = min(n, rows - 1 - i)
        out.append((i, n))
        i += n
    return out


def window(source: torch.Tensor, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[length, B]`` and their next-word targets ``[length, B]`` of one window."""
    return source[start: start + length], source[start + 1: start + 1 + length]


def write_tiny_corpus(root, layout: str = "ptb", lines: tuple[int, int, int] = (400, 60, 60), words: int = 30,
                      seed: int = 0) -> Path:
    """A small generated corpus in a layout's file names (for tests and quick demos): lines drawn from a tiny
    grammar over `words` words, so a language model can lower its perplexity on it. At the default sizes every
    word occurs in the training split."""
    g = torch.Generator().manual_seed(seed)
    vocab = [f"w{i}" for i in range(words)]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for fname, n in zip(TEXT_LAYOUTS[layout], lines):
        out = []
        for _ in range(n):
            length = int(torch.randint(3, 12, (1,), generator=g))
            w = int(torch.randint(0, words, (1,), generator=g))
            sent = []
            for _ in range(length):
                sent.append(vocab[w])
                # mostly the next word in a cycle, sometimes a jump: learnable, not trivial
                w = (w + 1) % words if float(torch.rand(1, generator=g)) < 0.8 else int(
                    torch.randint(0, words, (1,), generator=g))
            out.append(" ".join(sent))
        (root / fname).write_text("\n".join(out) + "\n", encoding="utf-8")
    return root
