"""Classification metrics: plain NumPy in, NumPy out.

Legend: N items, K classes. ``y_true`` and ``y_pred`` are integer labels (N,) in 0..K-1;
``scores`` are (N, K) (logits or probabilities: only their order matters).

For class k, with TP_k items of class k predicted k, FP_k others predicted k, FN_k items of
class k predicted otherwise:

    precision_k = TP_k / (TP_k + FP_k)      recall_k = TP_k / (TP_k + FN_k)
    F1_k = 2 precision_k recall_k / (precision_k + recall_k)

One rule for a ratio whose denominator is 0, everywhere in cnnlab (these functions, the
trainer, ``cnnlab evaluate``, the multitask metrics): it is **undefined, NaN** (see
:func:`ratio`). The precision of a class that is never predicted, the recall of a class that
never occurs, the accuracy of no items: there is nothing to measure, and 0 would read as "all
wrong" (scikit-learn's default of 0 with a warning hides the difference in a table). F1 is
NaN when precision or recall is; when both are 0 (defined: nothing right), F1 is 0. The macro
average is the mean over the classes where the value is defined (NaN if none is), and printed
tables show an undefined value as ``-``.

The trainer's per-batch accuracy on network outputs (:func:`output_accuracy`,
:func:`binary_accuracy`) lives here too, so that ``fit``, ``evaluate`` and the command line
count the same way.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "binary_accuracy",
    "f1_score",
    "output_accuracy",
    "ratio",
    "classification_report",
    "confusion_matrix",
    "format_confusion_matrix",
    "precision_recall_f1",
    "top_k_accuracy",
]


def _labels(op: str, name: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{op}: {name} must be 1-D labels (N,); received shape {y.shape}")
    if len(y) and y.dtype.kind not in "iu":
        if y.dtype.kind == "b" or (y.dtype.kind == "f" and np.all(y == np.round(y))):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{op}: {name} must hold integer class labels; received {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if len(y) and y.min() < 0:
        raise ValueError(f"{op}: {name} has a negative label {y.min()}; labels are 0..K-1")
    return y


def _pair(op: str, y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(op, "y_true", y_true), _labels(op, "y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{op}: y_true and y_pred must have the same length; received {y_true.shape} "
            f"and {y_pred.shape}"
        )
    return y_true, y_pred


def _num_classes(op: str, num_classes, *ys) -> int:
    found = max((int(y.max()) + 1 for y in ys if len(y)), default=0)
    if num_classes is None:
        return found
    if found > num_classes:
        raise ValueError(
            f"{op}: found label {found - 1} but num_classes={num_classes} (labels 0..K-1)"
        )
    return int(num_classes)


def ratio(a, b) -> np.ndarray:
    """a / b elementwise in float64, NaN where b == 0 (undefined: the module's one rule).

    >>> ratio([1, 0], [2, 0]).tolist()
    [0.5, nan]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    return np.divide(a, b, out=out, where=b != 0)


def f1_score(precision, recall) -> np.ndarray:
    """F1 = 2 P R / (P + R) from precision and recall (elementwise): 0 where P = R = 0
    (nothing right), NaN where P or R is undefined.

    >>> f1_score([0.5, 0.0, float("nan")], [1.0, 0.0, 1.0]).tolist()
    [0.6666666666666666, 0.0, nan]
    """
    p, r = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    f1 = ratio(2 * p * r, p + r)
    return np.where((p == 0) & (r == 0), 0.0, f1)


def accuracy(y_true, y_pred) -> float:
    """Fraction of items predicted right: mean(y_pred == y_true).

    ``y_pred`` may be labels (N,) or scores (N, K) (then its argmax is the prediction).
    Returns NaN for no items (undefined; module docstring).

    >>> accuracy([0, 1, 2, 2], [0, 2, 2, 2])
    0.75
    """
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    y_true, y_pred = _pair("accuracy", y_true, y_pred)
    return float(ratio(np.sum(y_true == y_pred), len(y_true)))


def binary_accuracy(logits, y) -> float:
    """Fraction of yes/no labels right, each output column its own question: a logit > 0 says
    yes, a target > 0.5 is yes. Unknown labels (NaN) are not counted; NaN when none is known.

    Shape: logits (N, T) (or (N,)); y the same number of values.

    >>> binary_accuracy([[2.0, -1.0], [0.5, 3.0]], [[1, 0], [0, float("nan")]])
    0.6666666666666666
    """
    logits = np.asarray(logits)
    y = np.asarray(y, dtype=np.float64).reshape(logits.shape)
    known = ~np.isnan(y)
    return float(ratio(np.sum((logits > 0)[known] == (y[known] > 0.5)), known.sum()))


def output_accuracy(logits, y) -> float:
    """The accuracy ``fit`` reports for a network's outputs ``logits`` (N, K).

    Integer labels (N,) or rows of class probabilities / one-hot (N, K): the fraction whose
    argmax is right. With one output column, or multi-label targets (rows that are not a
    distribution, or NaN for unknown labels): :func:`binary_accuracy` instead, as Keras picks
    for a binary cross-entropy.

    >>> output_accuracy([[2.0, 0.1], [0.3, 0.2]], [0, 1])
    0.5
    """
    logits, y = np.asarray(logits), np.asarray(y)
    if logits.shape[-1] == 1 or (y.ndim == logits.ndim and _is_multilabel(y)):
        return binary_accuracy(logits, y)
    if y.ndim == logits.ndim:
        y = y.argmax(axis=-1)
    return float(ratio(np.sum(logits.argmax(axis=-1) == y), len(y)))


def _is_multilabel(y: np.ndarray) -> bool:
    y = y.astype(np.float64, copy=False)
    return bool(np.isnan(y).any() or not np.allclose(y.sum(axis=-1), 1.0))


def top_k_accuracy(scores, labels, k: int = 5) -> float:
    """Fraction of items whose true class is among the ``k`` highest scores.

    Item n counts when fewer than k classes score strictly higher than its true class
    (so ties are resolved in the item's favour). top_k_accuracy(s, y, 1) is accuracy when
    the scores have no ties.

    Shape: scores (N, K), labels (N,).

    >>> top_k_accuracy([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]], [2, 2], k=2)
    0.5
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"top_k_accuracy: scores must be (N, K); received shape {scores.shape}")
    labels = _labels("top_k_accuracy", "labels", labels)
    n, num = scores.shape
    if len(labels) != n:
        raise ValueError(f"top_k_accuracy: scores has {n} rows but labels has {len(labels)} items")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_accuracy: k must be an int >= 1; received {k!r}")
    if n and labels.max() >= num:
        raise ValueError(
            f"top_k_accuracy: label {labels.max()} is out of range for {num} score columns"
        )
    if n == 0:
        return 0.0
    true_score = scores[np.arange(n), labels]  # (N,)
    higher = (scores > true_score[:, None]).sum(axis=1)  # (N,) classes that beat the truth
    return float(np.mean(higher < k))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """C[i, j] = number of items of true class i predicted as class j.

    Rows are true classes, columns predictions; ``num_classes`` K defaults to the largest
    label seen + 1. Returns int64 (K, K); its diagonal holds the TP_k, row sums the support.

    >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
    [[1, 0], [1, 1]]
    """
    y_true, y_pred = _pair("confusion_matrix", y_true, y_pred)
    k = _num_classes("confusion_matrix", num_classes, y_true, y_pred)
    counts = np.bincount(y_true * k + y_pred, minlength=k * k)  # (K*K,)
    return counts.reshape(k, k).astype(np.int64)


def precision_recall_f1(y_true, y_pred, average=None, num_classes=None):
    """Precision, recall and F1: per class (average=None), or averaged ('macro', 'micro').

    None     three float64 arrays (K,), entry k for class k
    'macro'  three floats: the unweighted means of the per-class values over all K classes
             (macro F1 is the mean of the F1_k, not the F1 of macro precision and recall)
    'micro'  three floats from the summed counts: precision = sum TP / sum predicted,
             recall = sum TP / sum true; for single-label data all three equal the accuracy

    A zero denominator gives NaN, and the macro mean is over the classes where the value is
    defined (see the module docstring). ``num_classes`` K defaults to the largest label seen
    + 1.

    >>> p, r, f = precision_recall_f1([0, 0, 1, 1], [0, 1, 1, 1])
    >>> p.tolist(), r.tolist()
    ([1.0, 0.6666666666666666], [0.5, 1.0])
    """
    if average not in (None, "macro", "micro"):
        raise ValueError(
            f"precision_recall_f1: average must be None, 'macro' or 'micro'; received {average!r}"
        )
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)  # (K,)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)  # (K,), (K,)
    if average == "micro":
        precision = float(ratio(tp.sum(), predicted.sum()))
        recall = float(ratio(tp.sum(), actual.sum()))
        return precision, recall, float(f1_score(precision, recall))
    precision = ratio(tp, predicted)
    recall = ratio(tp, actual)
    f1 = f1_score(precision, recall)
    if average == "macro":
        return _defined_mean(precision), _defined_mean(recall), _defined_mean(f1)
    return precision, recall, f1


def _defined_mean(values: np.ndarray) -> float:
    """The mean of the values that are defined (not NaN); NaN when none is."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else float("nan")


def classification_report(
    y_true, y_pred, class_names=None, num_classes: int | None = None, digits: int = 4
) -> str:
    """A printable table: precision, recall, F1 and support per class, then summary rows.

    Rows: one per class (named by ``class_names`` or by the label), then ``accuracy``,
    ``macro avg`` (unweighted means over classes; support = N) and ``micro avg`` (from the
    summed counts; equal to the accuracy for single-label data). An undefined value (a zero
    denominator) is shown as ``-``.

    >>> print(classification_report([0, 0, 1, 1], [0, 1, 1, 1]))  # doctest: +NORMALIZE_WHITESPACE
                 precision    recall  f1-score   support
    <BLANKLINE>
               0    1.0000    0.5000    0.6667         2
               1    0.6667    1.0000    0.8000         2
    <BLANKLINE>
        accuracy                        0.7500         4
       macro avg    0.8333    0.7500    0.7333         4
       micro avg    0.7500    0.7500    0.7500         4
    """
    y_true, y_pred = _pair("classification_report", y_true, y_pred)
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    k = _num_classes("classification_report", num_classes, y_true, y_pred)
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"classification_report: {len(names)} class names for {k} classes")
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, None, k)
    support = np.bincount(y_true, minlength=k)
    macro = precision_recall_f1(y_true, y_pred, "macro", k)
    micro = precision_recall_f1(y_true, y_pred, "micro", k)
    n = len(y_true)
    width = max([len(s) for s in names] + [len("macro avg"), digits + 6])
    col = max(digits + 6, 9)

    def num(v):
        return f"{'-':>{col}}" if np.isnan(v) else f"{v:>{col}.{digits}f}"

    header = (
        f"{'':>{width}} {'precision':>{col}} {'recall':>{col}} {'f1-score':>{col}} "
        f"{'support':>{col}}"
    )
    lines = [header, ""]
    for i, name in enumerate(names):
        lines.append(
            f"{name:>{width}} {num(precision[i])} {num(recall[i])} {num(f1[i])} "
            f"{support[i]:>{col}d}"
        )
    lines.append("")
    acc = accuracy(y_true, y_pred)
    lines.append(f"{'accuracy':>{width}} {'':>{col}} {'':>{col}} {num(acc)} {n:>{col}d}")
    for label, (p, r, f) in (("macro avg", macro), ("micro avg", micro)):
        lines.append(f"{label:>{width}} {num(p)} {num(r)} {num(f)} {n:>{col}d}")
    return "\n".join(lines)


def format_confusion_matrix(cm, class_names=None) -> str:
    """A printable confusion matrix: rows true classes, columns predicted classes.

    >>> print(format_confusion_matrix([[3, 1], [0, 4]]))
    true\\pred  0  1
            0  3  1
            1  0  4
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"format_confusion_matrix: cm must be (K, K); received {cm.shape}")
    k = cm.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"format_confusion_matrix: {len(names)} class names for {k} classes")
    corner = "true\\pred"
    first = max([len(corner)] + [len(s) for s in names])
    col = max([len(s) for s in names] + [len(str(int(cm.max()))) if cm.size else 1])
    lines = [f"{corner:>{first}}  " + "  ".join(f"{s:>{col}}" for s in names)]
    for name, row in zip(names, cm):
        lines.append(f"{name:>{first}}  " + "  ".join(f"{int(v):>{col}d}" for v in row))
    return "\n".join(lines)
