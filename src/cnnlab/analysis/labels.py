"""Which examples are most likely labelled wrong: self-confidence and confident learning.

Legend: N examples, K classes; ``probs`` (N, K) are predicted class probabilities that did not
see the example in training (a held-out split, or cross-validated "out-of-sample"
probabilities); ``labels`` (N,) the given labels.

Self-confidence (Northcutt et al. 2021, the ranking score cleanlab calls "self_confidence"):
the probability the model gives the *given* label, p[i, y_i]; the lower, the more suspect.

Confident learning (Northcutt, Jiang, Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 70, 2021): a per-class threshold, the model's average confidence in class
j over the examples labelled j,

    t_j = mean{ p[i, j] : y_i = j },

and example i is *confidently* of class j* = argmax{ p[i, j] : p[i, j] >= t_j } (none when no
class reaches its threshold; "reaches" allows 1e-6 of rounding, as cleanlab does). The counts
C[y, j*] form the confident joint; the examples off its diagonal (j* != y_i) are the label
issues ("confident_learning" below, cleanlab's ``filter_by='confident_learning'``), less those
whose argmax is still their label. Per-class thresholds matter because a model is more
confident on some classes than on others: a 0.6 is low for a "1" and high for an "8".

The ranking puts the label issues first, then everything else, each part by ascending
self-confidence: the first k of it are the k examples to look at first.

Written in NumPy rather than calling cleanlab: the method is a few lines, cnnlab's runtime
dependency is NumPy only, and cleanlab's own dependencies (scikit-learn, SciPy, pandas, joblib,
...: 280 MB installed) dwarf cnnlab. The results are cleanlab's (2.9: the same uncalibrated
confident joint, label issues and ranking; tests/analysis/test_labels.py checks it when
cleanlab is installed); users who want its further methods can pass the same ``probs`` to it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["self_confidence", "per_class_thresholds", "confident_joint", "label_issues",
           "rank_label_issues"]


def _check(op: str, probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(f"{op}: probs must be (N, K) class probabilities; received shape "
                         f"{probs.shape}")
    if labels.shape != (len(probs),) or (len(labels) and labels.dtype.kind not in "iu"):
        raise ValueError(f"{op}: labels must be (N,) integers with N = {len(probs)}; received "
                         f"shape {labels.shape}, dtype {labels.dtype}")
    k = probs.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{op}: labels must be in 0..{k - 1} (probs has {k} columns); "
                         f"received {labels.min()}..{labels.max()}")
    if not np.all(np.isfinite(probs)) or probs.min(initial=0) < 0:
        raise ValueError(f"{op}: probs must be finite and >= 0 (softmax outputs)")
    return probs, labels.astype(np.int64)


def self_confidence(probs, labels) -> np.ndarray:
    """p[i, y_i]: the probability of the given label, (N,)."""
    probs, labels = _check("self_confidence", probs, labels)
    return probs[np.arange(len(labels)), labels]


def per_class_thresholds(probs, labels) -> np.ndarray:
    """t_j = mean p[i, j] over the examples labelled j, (K,); a class with no examples gets
    +inf (no example is ever confidently of it)."""
    probs, labels = _check("per_class_thresholds", probs, labels)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)  # (K,)
    sums = np.zeros(k)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])  # sum of p[i, y_i] per class
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


_TOLERANCE = 1e-6  # p >= t - 1e-6 counts as reaching t, as in cleanlab: a mean's rounding
# must not drop an example that sits at its class's threshold


def _confident_class(probs, thresholds) -> np.ndarray:
    """j* per example: argmax of p[i, j] over the classes at or above their threshold; -1
    where no class is."""
    above = probs >= thresholds[None, :] - _TOLERANCE  # (N, K)
    masked = np.where(above, probs, -1.0)
    j = masked.argmax(axis=1)
    return np.where(above.any(axis=1), j, -1)


def confident_joint(probs, labels) -> np.ndarray:
    """C (K, K): C[y, j] counts examples labelled y that are confidently of class j."""
    probs, labels = _check("confident_joint", probs, labels)
    k = probs.shape[1]
    j = _confident_class(probs, per_class_thresholds(probs, labels))
    keep = j >= 0
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[keep], j[keep]), 1)
    return joint


def label_issues(probs, labels) -> np.ndarray:
    """Boolean (N,): the examples off the confident joint's diagonal (confidently of a class
    other than their label), except those the model itself predicts as their label (argmax,
    ties to the label): a model that agrees with a label is no witness against it (cleanlab
    drops them too)."""
    probs, labels = _check("label_issues", probs, labels)
    j = _confident_class(probs, per_class_thresholds(probs, labels))
    rows = np.arange(len(labels))
    boosted = probs.copy()
    boosted[rows, labels] += _TOLERANCE  # a tie goes to the given label
    agrees = boosted.argmax(axis=1) == labels
    return (j >= 0) & (j != labels) & ~agrees


def rank_label_issues(probs, labels, method: str = "confident_learning") -> np.ndarray:
    """Indices of all N examples, the likeliest mislabelled first.

    method  'confident_learning': the label issues first, then the rest, each by ascending
            self-confidence; 'self_confidence': all by ascending self-confidence.
    Ties keep the original order (stable sort).
    """
    if method not in ("confident_learning", "self_confidence"):
        raise ValueError(f"rank_label_issues: method must be 'confident_learning' or "
                         f"'self_confidence'; received {method!r}")
    score = self_confidence(probs, labels)
    if method == "self_confidence":
        return np.argsort(score, kind="stable")
    flagged = label_issues(probs, labels)
    # lexsort: the last key is the primary one; flagged (True) first
    return np.lexsort((score, ~flagged))
