"""Runs: a search (images or text), training an evaluation network or a language model, evaluation; all on the
one epoch loop of :mod:`darts_nas.run.loop`. :mod:`darts_nas.run.dispatch` chooses the run kind."""

from .dispatch import (SEARCH_RUNS, evaluate_trained, is_language_model, resume_search, resume_training,
                       run_genotype, search_run_class, start_search, start_training)

__all__ = ["SEARCH_RUNS", "evaluate_trained", "is_language_model", "resume_search", "resume_training",
           "run_genotype", "search_run_class", "start_search", "start_training"]
