"""cnnlab.metrics against hand-computed numbers, nested loops, and sklearn when it is there."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    format_confusion_matrix,
    precision_recall_f1,
    top_k_accuracy,
)

# 10 items, 4 classes; class 3 is present once and never predicted.
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1]
# by hand: rows true, columns predicted
CM = [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 3, 0], [0, 1, 0, 0]]
# TP = [2, 1, 3, 0], predicted = [3, 3, 4, 0], true = [3, 2, 4, 1]
NAN = float("nan")
PRECISION = [2 / 3, 1 / 3, 3 / 4, NAN]  # class 3 is never predicted: 0/0, undefined
RECALL = [2 / 3, 1 / 2, 3 / 4, 0.0]  # class 3 occurs once, never found: 0/1
F1 = [2 / 3, 2 / 5, 3 / 4, NAN]  # class 1: 2 (1/3)(1/2) / (1/3 + 1/2) = 2/5; class 3: P undefined


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    assert cm.dtype == np.int64 and cm.tolist() == CM
    wider = confusion_matrix(Y_TRUE, Y_PRED, num_classes=6)
    assert wider.shape == (6, 6) and wider[:4, :4].tolist() == CM and wider[4:].sum() == 0


def test_confusion_matrix_against_loops():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    assert np.array_equal(confusion_matrix(y_true, y_pred, 7), expected)


def test_accuracy():
    assert accuracy(Y_TRUE, Y_PRED) == 0.6
    scores = np.eye(4)[Y_PRED] * 0.9 + 0.01  # argmax is Y_PRED
    assert accuracy(Y_TRUE, scores) == 0.6
    assert np.isnan(accuracy([], []))  # no items: undefined


def test_per_class_by_hand():
    p, r, f = precision_recall_f1(Y_TRUE, Y_PRED)
    assert p.dtype == np.float64 and p.shape == (4,)
    assert p.tolist() == pytest.approx(PRECISION, nan_ok=True)
    assert r.tolist() == pytest.approx(RECALL, nan_ok=True)
    assert f.tolist() == pytest.approx(F1, nan_ok=True)


def test_macro_micro_by_hand():
    p, r, f = precision_recall_f1(Y_TRUE, Y_PRED, average="macro")
    # the mean over the classes where each is defined: precision and F1 over classes 0-2
    assert (p, r, f) == pytest.approx((1.75 / 3, 23 / 48, (2 / 3 + 2 / 5 + 3 / 4) / 3))
    assert precision_recall_f1(Y_TRUE, Y_PRED, average="micro") == pytest.approx((0.6, 0.6, 0.6))
    # a 5th class that never occurs nor is predicted is undefined: it leaves the means alone
    p5, r5, _ = precision_recall_f1(Y_TRUE, Y_PRED, average="macro", num_classes=5)
    assert (p5, r5) == pytest.approx((1.75 / 3, 23 / 48))


def _same(a, b) -> bool:
    """Equal lists where NaN equals NaN."""
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


def test_zero_division_is_undefined_nan():
    p, r, f = precision_recall_f1([0, 0], [0, 0], num_classes=3)
    assert _same(p, [1, NAN, NAN]) and _same(r, [1, NAN, NAN]) and _same(f, [1, NAN, NAN])
    p, r, f = precision_recall_f1([1, 1], [0, 0])  # class 0: predicted, never true; no TP at all
    assert _same(p, [0, NAN]) and _same(r, [NAN, 0]) and _same(f, [NAN, NAN])
    # precision and recall both 0 (defined: nothing right) give F1 = 0, not NaN
    p, r, f = precision_recall_f1([0, 1, 1], [1, 0, 2], num_classes=3)
    assert _same(p, [0, 0, 0]) and _same(r, [0, 0, NAN]) and _same(f, [0, 0, NAN])
    assert all(np.isnan(precision_recall_f1([], [], average="micro")))
    assert all(np.isnan(precision_recall_f1([], [], average="macro")))


def test_top_k_by_hand():
    scores = [[0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.3, 0.1], [0.2, 0.3, 0.4, 0.1]]
    labels = [2, 0, 3]  # true class rank: 2nd, 1st, 4th
    assert [top_k_accuracy(scores, labels, k) for k in (1, 2, 3, 4)] == pytest.approx(
        [1 / 3, 2 / 3, 2 / 3, 1.0]
    )
    assert top_k_accuracy([[0.5, 0.5, 0.0]], [1], k=1) == 1.0  # ties go the item's way
    rng = np.random.default_rng(0)
    s, y = rng.random((100, 10)), rng.integers(0, 10, 100)
    assert top_k_accuracy(s, y, 1) == accuracy(y, s)


def test_report_table():
    report = classification_report(Y_TRUE, Y_PRED, class_names=["zero", "one", "two", "three"])
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["zero", "0.6667", "0.6667", "0.6667", "3"]
    assert lines[3].split() == ["one", "0.3333", "0.5000", "0.4000", "2"]
    assert lines[5].split() == ["three", "-", "0.0000", "-", "1"]  # '-': undefined
    assert lines[7].split() == ["accuracy", "0.6000", "10"]
    assert lines[8].split() == ["macro", "avg", "0.5833", "0.4792", "0.6056", "10"]
    assert lines[9].split() == ["micro", "avg", "0.6000", "0.6000", "0.6000", "10"]
    assert len({len(line) for line in lines if line}) == 1  # columns line up
    digits2 = classification_report(Y_TRUE, Y_PRED, digits=2).splitlines()
    assert digits2[2].split() == ["0", "0.67", "0.67", "0.67", "3"]


def test_format_confusion_matrix():
    text = format_confusion_matrix(confusion_matrix([0, 1, 1], [0, 0, 1]), ["cat", "dog"])
    assert text.splitlines() == [
        "true\\pred  cat  dog",
        "      cat    1    0",
        "      dog    1    1",
    ]


def test_errors():
    with pytest.raises(
        ValueError,
        match=r"confusion_matrix: y_true and y_pred must have the same length; "
        r"received \(3,\) and \(2,\)",
    ):
        confusion_matrix([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="confusion_matrix: found label 3 but num_classes=2"):
        confusion_matrix([0, 3], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="y_pred has a negative label -1"):
        confusion_matrix([0, 1], [0, -1])
    with pytest.raises(TypeError, match="y_true must hold integer class labels"):
        accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(
        ValueError, match="average must be None, 'macro' or 'micro'; received 'weighted'"
    ):
        precision_recall_f1([0], [0], average="weighted")
    with pytest.raises(ValueError, match="top_k_accuracy: k must be an int >= 1"):
        top_k_accuracy([[1.0, 0.0]], [0], k=0)
    with pytest.raises(
        ValueError, match="top_k_accuracy: scores has 1 rows but labels has 2 items"
    ):
        top_k_accuracy([[1.0, 0.0]], [0, 1])


def test_random_labels_against_plain_loops():
    """precision/recall/F1 (per class, macro, micro) and top-k recounted one item at a time."""
    rng = np.random.default_rng(1)
    k = 5
    y_true, y_pred = rng.integers(0, k, 300), rng.integers(0, k, 300)
    tp, fp, fn = [0] * k, [0] * k, [0] * k
    cm = [[0] * k for _ in range(k)]
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        cm[t][p] += 1
        if t == p:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    assert confusion_matrix(y_true, y_pred, k).tolist() == cm

    def div(a, b):
        return a / b if b else NAN

    prec = [div(tp[c], tp[c] + fp[c]) for c in range(k)]
    rec = [div(tp[c], tp[c] + fn[c]) for c in range(k)]
    f1 = [div(2 * prec[c] * rec[c], prec[c] + rec[c]) for c in range(k)]
    ours = precision_recall_f1(y_true, y_pred, None, k)
    assert np.allclose(ours, (prec, rec, f1))
    macro = precision_recall_f1(y_true, y_pred, "macro", k)
    assert np.allclose(macro, (sum(prec) / k, sum(rec) / k, sum(f1) / k))
    micro_p = div(sum(tp), sum(tp) + sum(fp))
    micro_r = div(sum(tp), sum(tp) + sum(fn))
    micro = precision_recall_f1(y_true, y_pred, "micro", k)
    assert np.allclose(micro, (micro_p, micro_r, div(2 * micro_p * micro_r, micro_p + micro_r)))
    scores = rng.random((300, k))
    hits = 0
    for row, label in zip(scores.tolist(), y_true.tolist()):
        better = sum(1 for v in row if v > row[label])
        hits += better < 2
    assert top_k_accuracy(scores, y_true, 2) == pytest.approx(hits / 300)


def test_the_trainers_accuracy_lives_here_and_counts_by_hand():
    from cnnlab.metrics import binary_accuracy, output_accuracy

    logits = np.array([[2.0, 0.1, 0.0], [0.3, 0.2, 0.9], [0.0, 1.0, 0.5]])
    assert output_accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert output_accuracy(logits, np.eye(3)[[0, 1, 1]]) == pytest.approx(2 / 3)  # one-hot rows
    # multi-label rows (not distributions) and NaN for unknown: each yes/no counted, NaN skipped
    y = np.array([[1, 0, 1], [0, 0, NAN], [1, 1, 1]])
    # logit > 0 says yes: rows yes,yes,no / yes,yes,(yes) / no,yes,yes against the truth
    right = [[True, False, False], [False, False], [False, True, True]]
    assert binary_accuracy(logits, y) == pytest.approx(sum(map(sum, right)) / 8)
    assert output_accuracy(logits, y) == binary_accuracy(logits, y)
    assert np.isnan(binary_accuracy([[1.0]], [[NAN]]))  # nothing known: undefined


def test_multitask_follows_the_same_rule():
    from cnnlab.models.multitask import per_task_metrics

    # task 0: never predicted yes, one true yes: precision 0/0 NaN, recall 0/1 = 0, F1 NaN
    # task 1: predicted yes once, never true: precision 0/1 = 0, recall 0/0 NaN
    m = per_task_metrics(np.array([[-1.0, 2.0], [-1.0, -2.0]]), np.array([[1.0, 0.0],
                                                                            [0.0, 0.0]]))
    assert _same(m["precision"], [NAN, 0]) and _same(m["recall"], [0, NAN])
    assert _same(m["f1"], [NAN, NAN])


def test_docstring_examples_of_metrics():
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module("cnnlab.metrics")).failed == 0
