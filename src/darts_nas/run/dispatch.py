"""The one place that chooses a run kind: a search by its space's ``data_kind`` (images or text), a training run
by its network (image network or language model), a resumed run or an evaluation by the kind of its checkpoint.
The command line and API users come here; the run modules below never import each other in a circle."""

from __future__ import annotations

from pathlib import Path

from ..config import SearchConfig, TrainConfig
from ..errors import DartsNasError
from ..genotypes import load_genotype
from ..spaces import get_space
from .checkpoint import BEST, CHECKPOINT, LAST, LM_TRAIN_KIND, TRAIN_KIND, load_checkpoint, resolve_checkpoint
from .common import check_resume, refuse_existing_run
from .lm import LMSearchRun, LMTrainRun, evaluate_lm_checkpoint, resume_lm_training
from .search import CHECKPOINT_KIND as SEARCH_KIND
from .search import SearchRun, search_model_from_checkpoint
from .seq2seq import (TRANSFORMER_TRAIN_KIND, Seq2SeqSearchRun, TransformerTrainRun, evaluate_transformer_checkpoint,
                      is_transformer, resume_transformer_training)
from .train import TrainRun, evaluate_checkpoint, resume_image_training

# The search run of each data kind a space declares (SearchModel.data_kind).
SEARCH_RUNS = {"images": SearchRun, "text": LMSearchRun, "seq2seq": Seq2SeqSearchRun}
# The training run of each network kind that is not an image network.
TRAIN_RUNS = {"rnn": LMTrainRun, "transformer": TransformerTrainRun}


def search_run_class(config: SearchConfig):
    return SEARCH_RUNS[get_space(config.space).data_kind]


def start_search(config: SearchConfig, run_dir, echo=print):
    """A new search in `run_dir` (refused if it already holds one)."""
    refuse_existing_run(run_dir, "search")
    return search_run_class(config)(config, run_dir, echo)


def resume_search(run_dir, echo=print, **changes):
    """Rebuild a search from its run directory and continue from its last epoch checkpoint. `changes` may set only
    common.RESUMABLE_CHANGES: anything else would make the continued run differ from the one recorded."""
    run_dir = Path(run_dir)
    check_resume(run_dir, changes)
    state = load_checkpoint(run_dir, kind=SEARCH_KIND)
    config = SearchConfig.from_dict({**state["config"], **changes})
    run = search_run_class(config)(config, run_dir, echo)
    run.load_state(state)
    return run


def start_training(config: TrainConfig, run_dir, echo=print):
    """A training run of an image network, or of a language model for a recurrent configuration."""
    refuse_existing_run(run_dir, "train")
    return TRAIN_RUNS.get(config.network_kind(), TrainRun)(config, run_dir, echo)


def resume_training(run_dir, echo=print, **changes):
    """Continue a training run (an image network's or a language model's, by its checkpoint) from its last epoch
    checkpoint, with its recorded settings and genotype."""
    run_dir = Path(run_dir)
    check_resume(run_dir, changes)
    state = load_checkpoint(run_dir)
    if state["kind"] == LM_TRAIN_KIND:
        return resume_lm_training(run_dir, state, echo, **changes)
    if state["kind"] == TRANSFORMER_TRAIN_KIND:
        return resume_transformer_training(run_dir, state, echo, **changes)
    if state["kind"] != TRAIN_KIND:
        raise DartsNasError(f"{resolve_checkpoint(run_dir)} holds a {state['kind']!r} checkpoint, not a "
                            f"{TRAIN_KIND!r} one")
    return resume_image_training(run_dir, state, echo, **changes)


def is_language_model(path) -> bool:
    """Whether a trained-model file, training checkpoint or run directory holds a language model."""
    p = Path(path)
    if p.is_dir():
        p = next((p / f for f in (BEST, LAST, CHECKPOINT) if (p / f).is_file()), p)
    return load_checkpoint(p).get("model_hparams", {}).get("kind") == "rnn"


def evaluate_trained(path, device="auto", data=None, dataset=None, batch_size=None, genotype=None, limit=None,
                     echo=print) -> dict:
    """Evaluate what a training run produced: test accuracy of an image network, or valid and test perplexity of
    a language model (then ``"perplexity": True`` is in the result), or BLEU / perplexity of a Transformer."""
    if is_transformer(path):
        if genotype or limit or dataset or batch_size:
            raise DartsNasError("a trained Transformer is evaluated on its own data's valid and test splits (only "
                                "--data and --device apply)")
        result = evaluate_transformer_checkpoint(path, device=device, data=data, echo=echo)
        return {**result, "transformer": True, **({"perplexity": True} if "test_ppl" in result else {})}
    if is_language_model(path):
        from ..data.text import CORPORA

        if genotype or limit:
            raise DartsNasError("--genotype and --limit apply to image networks; a language model is evaluated on "
                                "the whole valid and test splits")
        if dataset and dataset not in CORPORA:
            raise DartsNasError(f"a language model reads a text corpus (--dataset {', '.join(CORPORA)})")
        result = evaluate_lm_checkpoint(path, device=device, data=data, dataset=dataset, batch_size=batch_size,
                                        echo=echo)
        return {**result, "perplexity": True}
    return evaluate_checkpoint(path, device=device, data=data, dataset=dataset, batch_size=batch_size,
                               genotype=genotype, test_limit=limit, echo=echo)


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
