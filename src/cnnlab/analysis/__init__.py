"""After training: what to do next (the course's second half).

``diagnose``     avoidable bias, variance, data mismatch, dev-set overfitting; where to focus
``select``       the best model by one metric among those meeting the satisficing constraints
``constraints``  satisficing constraints such as ``latency_ms<=100``, shared by
                 ``cnnlab compare`` and ``cnnlab tune``
``errors``       the error-analysis spreadsheet (errors.csv) and its tally
``labels``       the examples most likely mislabelled (self-confidence, confident learning)
``report``       a self-contained HTML report of a run
``crossval``     out-of-sample probabilities (k-fold), labels flipped on purpose to test a finder

>>> from cnnlab.analysis import diagnose, select
>>> diagnose(train=0.01, dev=0.10, train_dev=0.015).focus
'data_mismatch'
"""

from cnnlab.analysis.constraints import Constraint, parse_constraint
from cnnlab.analysis.crossval import flip_labels, out_of_sample_probs, precision_at_k
from cnnlab.analysis.diagnose import Diagnosis, diagnose, wilson_interval
from cnnlab.analysis.errors import tally, write_errors
from cnnlab.analysis.labels import (
    confident_joint,
    label_issues,
    per_class_thresholds,
    rank_label_issues,
    self_confidence,
)
from cnnlab.analysis.report import render_report
from cnnlab.analysis.select import Selection, select

__all__ = [
    "Constraint",
    "Diagnosis",
    "Selection",
    "confident_joint",
    "diagnose",
    "flip_labels",
    "label_issues",
    "out_of_sample_probs",
    "parse_constraint",
    "per_class_thresholds",
    "precision_at_k",
    "rank_label_issues",
    "render_report",
    "select",
    "self_confidence",
    "tally",
    "wilson_interval",
    "write_errors",
]
