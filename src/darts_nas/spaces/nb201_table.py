"""NAS-Bench-201 results: the benchmark's 200-epoch test accuracy of every cell, read from a table the user gives
(CSV ``index,arch_str,cifar10_test_acc,cifar100_test_acc,imagenet16_120_test_acc``; never bundled), so a search
in the NB201 space reports what its cell is really worth."""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import DartsNasError
from .nb201 import NB201Arch

COLUMNS = ("arch_str", "cifar10_test_acc", "cifar100_test_acc", "imagenet16_120_test_acc")
DATASETS = ("cifar10", "cifar100", "imagenet16-120")


@dataclass(frozen=True)
class NB201Result:
    arch: str
    accuracies: dict  # dataset -> test accuracy (%)
    rank: int  # CIFAR-10 rank among all cells (1 = best)
    total: int

    def to_text(self) -> str:
        return (f"CIFAR-10 {self.accuracies['cifar10']:.2f}%  CIFAR-100 {self.accuracies['cifar100']:.2f}%  "
                f"ImageNet16-120 {self.accuracies['imagenet16-120']:.2f}%  (CIFAR-10 rank {self.rank}/{self.total})")

    def to_dict(self) -> dict:
        return {"arch": self.arch, **{f"{k}_test_acc": v for k, v in self.accuracies.items()}, "cifar10_rank": self.rank,
                "cells": self.total}


class NB201Table:
    def __init__(self, rows: dict[str, tuple[float, float, float]], path: str = ""):
        if not rows:
            raise DartsNasError(f"{path}: the NAS-Bench-201 table has no rows")
        self.rows = rows
        self.path = path
        self._c10 = sorted(r[0] for r in rows.values())

    @classmethod
    def load(cls, path) -> "NB201Table":
        path = Path(path)
        key = str(path.resolve())
        if key in _CACHE:
            return _CACHE[key]
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DartsNasError(f"{path}: not a NAS-Bench-201 results table (missing column "
                                        f"{', '.join(missing)}; expected {','.join(('index',) + COLUMNS)})")
                rows = {}
                for line, row in enumerate(reader, 2):
                    try:
                        arch = NB201Arch.from_text(row["arch_str"]).to_text()
                        rows[arch] = tuple(float(row[c]) for c in COLUMNS[1:])
                    except (DartsNasError, TypeError, ValueError) as e:
                        raise DartsNasError(f"{path}, line {line}: {e}") from None
        except OSError as e:
            raise DartsNasError(f"cannot read the NAS-Bench-201 table {path}: {e.strerror or e}") from None
        except (UnicodeDecodeError, csv.Error) as e:
            raise DartsNasError(f"{path}: not a NAS-Bench-201 results table (not CSV text: {e})") from None
        table = _CACHE[key] = cls(rows, str(path))
        return table

    def lookup(self, arch) -> NB201Result:
        arch = arch if isinstance(arch, NB201Arch) else NB201Arch.from_text(arch)
        text = arch.to_text()
        if text not in self.rows:
            raise DartsNasError(f"{text} is not in the table {self.path} ({len(self.rows)} cells)")
        accs = self.rows[text]
        rank = len(self._c10) - bisect.bisect_right(self._c10, accs[0]) + 1
        return NB201Result(text, dict(zip(DATASETS, accs)), rank, len(self.rows))


_CACHE: dict[str, NB201Table] = {}
