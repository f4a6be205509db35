"""The documentation's code runs as written.

Every ```python block of README.md and docs/api.md is executed, each file's blocks in order in one namespace (a
block may use names an earlier block of the same file defined), in a temporary working directory. The ```sh
blocks of README.md run for hours on real data, so they are not executed: each `darts-nas` command line in them is
parsed by the real command-line parser, and a search or train line that starts a run also builds and validates
its configuration (validation does not read the data paths)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import traceback
from pathlib import Path

import pytest

from darts_nas.cli import build_parser
from darts_nas.config import SearchConfig, TrainConfig, overrides_from_args, preset_config, train_preset_config
from darts_nas.errors import DartsNasError

ROOT = Path(__file__).resolve().parents[1]
PYTHON_DOCS = ("README.md", "docs/api.md")

# A fenced block: the opening fence (its language), the body, the closing fence at the same indentation.
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)


def code_blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """(line number of the block's first code line, code) of each ```lang block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in FENCE.finditer(text):
        if m.group("lang").lower() != lang:
            continue
        indent = m.group("indent")
        body = "".join(line.removeprefix(indent) for line in m.group("body").splitlines(keepends=True))
        blocks.append((text.count("\n", 0, m.start("body")) + 1, body))
    return blocks


def test_the_block_parser_finds_the_blocks():
    assert len(code_blocks(ROOT / "docs/api.md", "python")) >= 10
    assert len(code_blocks(ROOT / "README.md", "python")) >= 1
    assert len(code_blocks(ROOT / "README.md", "sh")) >= 4


# ----------------------------------------------------------------------------------------------------------------
# python blocks: executed
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture
def clean_registries():
    """A block may register a search space (README: "Adding a search space"): take it out again afterwards."""
    from darts_nas.spaces import SPACES

    saved = dict(SPACES)
    yield
    SPACES.clear()
    SPACES.update(saved)


@pytest.mark.parametrize("doc", PYTHON_DOCS)
def test_python_blocks_run_as_written(doc, tmp_path, monkeypatch, clean_registries):
    import torch

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    path = ROOT / doc
    blocks = code_blocks(path, "python")
    assert blocks, f"{doc} has no python block"
    namespace = {"__name__": f"docs_{Path(doc).stem}"}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, (first_line, source) in enumerate(blocks, 1):
        # Compiled under a name of its own with the block's offset, so the traceback gives the line of the .md.
        filename = f"{doc}, python block {number}"
        failure = None
        try:
            exec(compile("\n" * (first_line - 1) + source, filename, "exec"), namespace)  # noqa: S102 - our own docs
        except Exception as e:  # noqa: BLE001 - any failure of a documented example is the test's failure
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
            line = e.lineno if isinstance(e, SyntaxError) and e.filename == filename else \
                frames[-1].lineno if frames else None
            where = f"line {line}: {lines[line - 1].strip()}" if line else "(no line of the block)"
            failure = (f"{doc}, python block {number} (from line {first_line}), {where}\n"
                       f"  {type(e).__name__}: {e}")
        if failure:
            pytest.fail(failure, pytrace=False)


# ----------------------------------------------------------------------------------------------------------------
# sh blocks: every darts-nas command line parsed, and its configuration validated
# ----------------------------------------------------------------------------------------------------------------
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S*)(\s+#.*)?$")


def logical_lines(source: str, first_line: int):
    """(line number, text) of each command of a shell block, `\\` continuations joined."""
    pending, start = "", None
    for offset, raw in enumerate(source.splitlines()):
        if start is None:
            start = first_line + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        yield start, pending + raw
        pending, start = "", None
    if pending:
        yield start, pending


def substitute(text: str, variables: dict) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)


def sh_commands(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, text, argv without the program name) of every darts-nas command of a Markdown file's sh blocks."""
    commands = []
    for first_line, source in code_blocks(path, "sh"):
        variables = {}
        for line, text in logical_lines(source, first_line):
            stripped = text.strip()
            if not stripped or stripped.startswith("#") or stripped.split()[0] == "make":
                continue
            m = ASSIGNMENT.match(stripped)
            if m:
                variables[m.group(1)] = substitute(m.group(2), variables)
                continue
            words = shlex.split(substitute(stripped, variables), comments=True)
            if words and words[0] == "torchrun":  # torchrun [its options] -m darts_nas ARGS: darts-nas ARGS
                assert "-m" in words and words[words.index("-m") + 1] == "darts_nas", f"{path.name} line {line}"
                words = ["darts-nas", *words[words.index("-m") + 2:]]
            assert words and words[0] == "darts-nas", f"{path.name} line {line}: not a darts-nas command: {stripped}"
            # `[--flag value]` marks an optional part in prose: the command with it spelled out is checked.
            words = [w.strip("[]") for w in words if w.strip("[]")]
            commands.append((line, stripped, words[1:]))
    return commands


def command_problem(line: int, text: str, argv: list[str]) -> str | None:
    """What is wrong with one README command line (None: nothing): the parser refuses it, or the run it starts
    has an invalid configuration."""
    where = f"README.md line {line}: {text}"
    message = io.StringIO()
    try:
        with contextlib.redirect_stderr(message), contextlib.redirect_stdout(message):
            args = build_parser().parse_args(argv)
    except SystemExit as e:
        said = message.getvalue().strip().splitlines()
        return f"{where}\n  the parser refused it (exit status {e.code}): {said[-1] if said else ''}"
    if args.command == "rl" and args.rl_command in ("search", "train") and not (args.resume or args.config):
        from darts_nas.rl.config import RLConfig, rl_config
        try:
            rl_config(args.preset, None, f"rl {args.rl_command}", **overrides_from_args(args, RLConfig)).validate()
        except DartsNasError as e:
            return f"{where}\n  invalid configuration: {e}"
        return None
    if args.command not in ("search", "train") or args.resume or args.config:
        return None
    make, cls = (preset_config, SearchConfig) if args.command == "search" else (train_preset_config, TrainConfig)
    try:
        make(args.preset, **overrides_from_args(args, cls)).validate()
    except DartsNasError as e:
        return f"{where}\n  invalid configuration: {e}"
    return None


def test_readme_commands_parse_and_validate():
    commands = sh_commands(ROOT / "README.md")
    assert len(commands) >= 20 and any(argv[0] == "search" for _, _, argv in commands)
    problems = [p for p in (command_problem(*c) for c in commands) if p]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_distributed_doc_commands_parse_and_validate():
    commands = sh_commands(ROOT / "docs" / "distributed.md")
    assert len(commands) == 4 and [argv[0] for _, _, argv in commands] == ["search", "train", "search", "search"]
    problems = [p for p in (command_problem(*c) for c in commands) if p]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_rl_doc_commands_parse_and_validate():
    commands = sh_commands(ROOT / "docs" / "rl-darts.md")
    assert [argv[:2] for _, _, argv in commands if argv[0] == "rl"][:4] == [["rl", "search"], ["rl", "search"],
                                                                          ["rl", "train"], ["rl", "train"]]
    problems = [p for p in (command_problem(*c) for c in commands) if p]
    assert command_problem(1, "darts-nas rl search --encoder impala", ["rl", "search", "--encoder", "impala"])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_transformer_doc_commands_parse_and_validate():
    commands = sh_commands(ROOT / "docs" / "transformer.md")
    assert [argv[0] for _, _, argv in commands][:6] == ["search", "search", "search", "train", "train", "train"]
    problems = [p for p in (command_problem(*c) for c in commands) if p]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_a_broken_command_is_reported():
    assert command_problem(1, "darts-nas models", ["models"]) is None
    assert re.search("(?s)line 7: .*the parser refused.*--no-such-flag",
                     command_problem(7, "darts-nas search --no-such-flag", ["search", "--no-such-flag"]))
    assert "line 8: darts-nas search --layers 2\n  invalid configuration: --layers must be at least 3" in \
        command_problem(8, "darts-nas search --layers 2", ["search", "--layers", "2"])
    assert "invalid configuration" in command_problem(9, "darts-nas train --drop-path-prob 1",
                                                      ["train", "--drop-path-prob", "1"])


def test_sh_lines_are_read_as_a_shell_would(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("text\n\n```sh\nmake demo    # not darts-nas\n# a comment\nD=~/data   # where\nT=$D/t.csv\n"
                   "darts-nas search --preset darts-nb201 \\\n    --data $D --nb201-table ${T}   # trailing comment\n"
                   "darts-nas info DARTS_V2 [--dataset imagenet] [--trace]\n"
                   "darts-nas train --genotype \"Genotype(normal=[('sep_conv_3x3', 0)], ...)\"\n```\n"
                   "\n```python\nx = 1\n```\n", encoding="utf-8")
    assert [(line, argv) for line, _, argv in sh_commands(doc)] == [
        (8, ["search", "--preset", "darts-nb201", "--data", "~/data", "--nb201-table", "~/data/t.csv"]),
        (10, ["info", "DARTS_V2", "--dataset", "imagenet", "--trace"]),
        (11, ["train", "--genotype", "Genotype(normal=[('sep_conv_3x3', 0)], ...)"]),
    ]
    assert code_blocks(doc, "python") == [(15, "x = 1\n")]
