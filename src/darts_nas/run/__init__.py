"""Runs: a search (images, text or translation pairs), training an evaluation network, a language model or a
Transformer, evaluation; all on the one epoch loop of :mod:`darts_nas.run.loop`. :mod:`darts_nas.run.dispatch`
chooses the run kind (:data:`~darts_nas.run.dispatch.RUN_KINDS`)."""

from .dispatch import (RUN_KINDS, SEARCH_RUNS, derive_checkpoint, evaluate_trained, is_language_model,
                       resume_search, resume_training, run_genotype, search_run_class, start_search, start_training)

__all__ = ["RUN_KINDS", "SEARCH_RUNS", "derive_checkpoint", "evaluate_trained", "is_language_model",
           "resume_search", "resume_training", "run_genotype", "search_run_class", "start_search", "start_training"]
