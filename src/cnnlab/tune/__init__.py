"""Hyperparameter search on Optuna (the ``tune`` extra): random search on log scales, coarse
to fine in rounds, many trials in parallel processes on one study (SQLite or PostgreSQL),
pruning, satisficing constraints, and no trial lost when a process dies.

``cnnlab tune`` (cnnlab.cli.tune) is the command; this package is the part that does not know
about training: the space (:mod:`~cnnlab.tune.space`), the study and its slots
(:mod:`~cnnlab.tune.study`), workers (:mod:`~cnnlab.tune.worker`), the rounds
(:mod:`~cnnlab.tune.search`) and the result files (:mod:`~cnnlab.tune.results`). An objective
is any ``objective(params, report, number) -> metrics``; ``report(epoch, value)`` returns True
when the trial is pruned.
"""

from cnnlab.tune.space import Param, SpaceError, load_space_file, narrow, parse_params, parse_spec

__all__ = ["Param", "SpaceError", "load_space_file", "narrow", "parse_params", "parse_spec"]
