"""The one place that chooses a run kind. :data:`RUN_KINDS` maps each checkpoint kind (:mod:`.checkpoint`) to its
run class and to what resumes, evaluates and derives from it; a new search starts by its space's ``data_kind``
(:data:`SEARCH_RUNS`), a new training run by its network. The command line and API users come here; the run
modules below never import each other in a circle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import SearchConfig, TrainConfig
from ..errors import DartsNasError
from ..genotypes import load_genotype
from ..spaces import get_space
from .checkpoint import (BEST, CHECKPOINT, LAST, LM_TRAIN_KIND, MODEL_KIND, RL_KIND, SEARCH_KIND, TRAIN_KIND,
                         TRANSFORMER_TRAIN_KIND, load_checkpoint, resolve_checkpoint)
from .common import check_resume, refuse_existing_run
from .lm import LMSearchRun, LMTrainRun, evaluate_lm_checkpoint, resume_lm_training
from .search import SearchRun, search_model_from_checkpoint
from .seq2seq import Seq2SeqSearchRun, TransformerTrainRun, evaluate_transformer_checkpoint, resume_transformer_training
from .train import TrainRun, evaluate_checkpoint, resume_image_training

# The search run of each data kind a space declares (SearchModel.data_kind).
SEARCH_RUNS = {"images": SearchRun, "text": LMSearchRun, "seq2seq": Seq2SeqSearchRun}
# The checkpoint kind of a trained network that is not an image network, by its model_hparams "kind".
NETWORK_KINDS = {"rnn": LM_TRAIN_KIND, "transformer": TRANSFORMER_TRAIN_KIND}


@dataclass(frozen=True)
class Derived:
    """What `darts-nas derive` shows of a checkpoint: the cell, a header line, notes (may be empty) and the
    alpha table (computed only when asked for)."""

    genotype: object
    header: str
    notes: str
    alpha_table: Callable[[], str]


@dataclass(frozen=True)
class RunKind:
    """What darts-nas does with a checkpoint of one kind. ``run_class(config)``: the run that writes it;
    ``resume(run_dir, state, echo, **changes)``: that run, continued from the loaded `state`;
    ``evaluate(path, state, options, echo)``: a trained network's figures; ``derive(path, state)``: a
    :class:`Derived`. None: the command does not apply to this kind."""

    kind: str
    run_class: Callable
    resume: Callable
    evaluate: Callable | None = None
    derive: Callable | None = None


def _rl_run_class(config):
    from .rl import RLRun
    return RLRun


def _resume_rl(run_dir, state, echo, **changes):
    from .rl import rl_from_state
    return rl_from_state(run_dir, state, echo, **changes)


def _resume_search(run_dir, state, echo, **changes):
    config = SearchConfig.from_record({**state["config"], **changes})
    run = search_run_class(config)(config, run_dir, echo)
    run.load_state(state)
    return run


def _derive_search(path, state) -> Derived:
    model, state = search_model_from_checkpoint(path, state)
    return Derived(model.genotype(), f"# epoch {state['epoch']}/{state['config']['epochs']} of {path}",
                   model.derivation_text() or "", model.alpha_table)


def _derive_rl(path, state) -> Derived:
    from .rl import derive_rl
    genotype, header, table = derive_rl(path, state)
    return Derived(genotype, header, "", lambda: table)


def _evaluate_image(path, state, o: dict, echo) -> dict:
    return evaluate_checkpoint(path, device=o["device"], data=o["data"], dataset=o["dataset"],
                               batch_size=o["batch_size"], genotype=o["genotype"], test_limit=o["limit"], echo=echo,
                               state=state)


def _evaluate_lm(path, state, o: dict, echo) -> dict:
    from ..data.text import CORPORA

    if o["genotype"] or o["limit"]:
        raise DartsNasError("--genotype and --limit apply to image networks; a language model is evaluated on "
                            "the whole valid and test splits")
    if o["dataset"] and o["dataset"] not in CORPORA:
        raise DartsNasError(f"a language model reads a text corpus (--dataset {', '.join(CORPORA)})")
    result = evaluate_lm_checkpoint(path, device=o["device"], data=o["data"], dataset=o["dataset"],
                                    batch_size=o["batch_size"], echo=echo, state=state)
    return {**result, "perplexity": True}


def _evaluate_transformer(path, state, o: dict, echo) -> dict:
    if o["genotype"] or o["limit"] or o["dataset"] or o["batch_size"]:
        raise DartsNasError("a trained Transformer is evaluated on its own data's valid and test splits (only "
                            "--data and --device apply)")
    result = evaluate_transformer_checkpoint(path, device=o["device"], data=o["data"], echo=echo, state=state)
    return {**result, "transformer": True, **({"perplexity": True} if "test_ppl" in result else {})}


RUN_KINDS: dict[str, RunKind] = {k.kind: k for k in (
    RunKind(SEARCH_KIND, lambda config: search_run_class(config), _resume_search, derive=_derive_search),
    RunKind(TRAIN_KIND, lambda config: TrainRun, resume_image_training, _evaluate_image),
    RunKind(LM_TRAIN_KIND, lambda config: LMTrainRun, resume_lm_training, _evaluate_lm),
    RunKind(TRANSFORMER_TRAIN_KIND, lambda config: TransformerTrainRun, resume_transformer_training,
            _evaluate_transformer),
    RunKind(RL_KIND, _rl_run_class, _resume_rl, derive=_derive_rl),
)}


def search_run_class(config: SearchConfig):
    return SEARCH_RUNS[get_space(config.space).data_kind]


def start_search(config: SearchConfig, run_dir, echo=print):
    """A new search in `run_dir` (refused if it already holds one)."""
    refuse_existing_run(run_dir, "search")
    return search_run_class(config)(config, run_dir, echo)


def resume_run(run_dir, kinds: tuple[str, ...], echo=print, **changes):
    """Continue the run in `run_dir` from its last checkpoint, which must be of one of `kinds` (the first names
    the kind expected). `changes` may set only common.RESUMABLE_CHANGES: anything else would make the continued
    run differ from the one recorded."""
    run_dir = Path(run_dir)
    check_resume(run_dir, changes)
    state = load_checkpoint(run_dir)
    if state["kind"] not in kinds:
        raise DartsNasError(f"{resolve_checkpoint(run_dir)} holds a {state['kind']!r} checkpoint, not a "
                            f"{kinds[0]!r} one")
    return RUN_KINDS[state["kind"]].resume(run_dir, state, echo, **changes)


def resume_search(run_dir, echo=print, **changes):
    """Rebuild a search from its run directory and continue from its last epoch checkpoint."""
    return resume_run(run_dir, (SEARCH_KIND,), echo, **changes)


def start_training(config: TrainConfig, run_dir, echo=print):
    """A training run of an image network, or of a language model or a Transformer for such a configuration."""
    refuse_existing_run(run_dir, "train")
    kind = NETWORK_KINDS.get(config.network_kind(), TRAIN_KIND)
    return RUN_KINDS[kind].run_class(config)(config, run_dir, echo)


def resume_training(run_dir, echo=print, **changes):
    """Continue a training run (an image network's, a language model's or a Transformer's, by its checkpoint) from
    its last epoch checkpoint, with its recorded settings and genotype."""
    return resume_run(run_dir, (TRAIN_KIND, LM_TRAIN_KIND, TRANSFORMER_TRAIN_KIND), echo, **changes)


def trained_kind(state: dict) -> str:
    """The checkpoint kind that says how a trained network's file is evaluated (a model file, best.pt / last.pt,
    holds any network: its model_hparams say which)."""
    network = NETWORK_KINDS.get(state.get("model_hparams", {}).get("kind"))
    return network or (TRAIN_KIND if state["kind"] == MODEL_KIND else state["kind"])


def _trained_file(run_dir: Path, kind: str) -> Path:
    """The file of a run directory that evaluating a network of `kind` reads: an image network's last.pt, a
    language model's or Transformer's best.pt, else the checkpoint."""
    names = (LAST, CHECKPOINT) if kind == TRAIN_KIND else (BEST, CHECKPOINT)
    return next((run_dir / n for n in names if (run_dir / n).is_file()), run_dir / CHECKPOINT)


def _recorded_network(run_dir: Path) -> str | None:
    """The network kind a training run directory's network.json records (None: no readable record)."""
    try:
        return json.loads((run_dir / "network.json").read_text())["hparams"]["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_trained(path) -> tuple[Path, dict]:
    """The file an evaluation of `path` reads (a file, or the right file of a run directory) and its contents,
    loaded once: a training run directory's network.json says which network it holds."""
    p = Path(path)
    if not p.is_dir():
        return p, load_checkpoint(p)
    network = _recorded_network(p)
    if network is not None:
        file = _trained_file(p, NETWORK_KINDS.get(network, TRAIN_KIND))
        return file, load_checkpoint(file)
    first = next((p / f for f in (BEST, LAST, CHECKPOINT) if (p / f).is_file()), p)
    state = load_checkpoint(first)
    file = _trained_file(p, trained_kind(state))
    return (first, state) if file == first else (file, load_checkpoint(file))


def is_language_model(path) -> bool:
    """Whether a trained-model file, training checkpoint or run directory holds a language model."""
    p = Path(path)
    if p.is_dir():
        p = next((p / f for f in (BEST, LAST, CHECKPOINT) if (p / f).is_file()), p)
    return load_checkpoint(p).get("model_hparams", {}).get("kind") == "rnn"


def is_transformer(path) -> bool:
    """Whether a trained-model file, training checkpoint or run directory holds a Transformer."""
    p = Path(path)
    if p.is_dir():
        p = next((p / f for f in (BEST, CHECKPOINT) if (p / f).is_file()), p)
    return load_checkpoint(p).get("model_hparams", {}).get("kind") == "transformer"


def evaluate_trained(path, device="auto", data=None, dataset=None, batch_size=None, genotype=None, limit=None,
                     echo=print) -> dict:
    """Evaluate what a training run produced: test accuracy of an image network, or valid and test perplexity of
    a language model (then ``"perplexity": True`` is in the result), or BLEU / perplexity of a Transformer. The
    checkpoint is read once."""
    file, state = load_trained(path)
    entry = RUN_KINDS.get(trained_kind(state))
    if entry is None or entry.evaluate is None:
        raise DartsNasError(f"{file} holds a {state['kind']!r} checkpoint, not a trained network (give a train "
                            "run's last.pt, best.pt or checkpoint.pt)")
    options = dict(device=device, data=data, dataset=dataset, batch_size=batch_size, genotype=genotype, limit=limit)
    return entry.evaluate(file, state, options, echo)


def derive_checkpoint(path) -> Derived:
    """The cell a search's (or an RL search's) checkpoint derives, read once."""
    state = load_checkpoint(path)
    entry = RUN_KINDS.get(state["kind"])
    if entry is None or entry.derive is None:
        raise DartsNasError(f"{resolve_checkpoint(path)} holds a {state['kind']!r} checkpoint, not a "
                            f"{SEARCH_KIND!r} one")
    return entry.derive(path, state)


def run_genotype(spec, kind: type | None = None):
    """The cell a search found: a genotype spec, or a run directory's genotype.json, or the current cell of an
    unfinished run's checkpoint. Returns (genotype, where it came from)."""
    path = Path(str(spec)).expanduser()
    if path.is_dir() and not (path / "genotype.json").is_file() and (path / CHECKPOINT).is_file() or \
            path.is_file() and path.suffix == ".pt":
        model, state = search_model_from_checkpoint(path)
        genotype = model.genotype()
        if kind is not None and not isinstance(genotype, kind):
            raise DartsNasError(f"{spec}: a search in the {model.space} space, not one of {kind.__name__} cells")
        return genotype, f"{path} (epoch {state['epoch']})"
    genotype = load_genotype(spec, kind)
    return genotype, str(path / "genotype.json") if path.is_dir() else str(spec)
