"""Atomic writes: the old file survives a failed write, and new files get normal permissions."""

import os

import pytest

from darts_nas.fileio import atomic_write_bytes, atomic_write_text


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_write_text(path, "good")

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(path, broken)
    assert path.read_text() == "good"
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temp file left behind


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
