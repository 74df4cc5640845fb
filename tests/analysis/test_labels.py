"""Likely mislabelled examples: self-confidence and confident learning on a hand-worked case."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.analysis import (
    confident_joint,
    label_issues,
    per_class_thresholds,
    rank_label_issues,
    self_confidence,
)

# 8 examples, 3 classes, worked by hand in the comments
PROBS = np.array([
    [0.90, 0.05, 0.05],  # 0 label 0
    [0.70, 0.20, 0.10],  # 1 label 0
    [0.10, 0.80, 0.10],  # 2 label 1
    [0.85, 0.10, 0.05],  # 3 label 1: confidently a 0 -> issue
    [0.10, 0.10, 0.80],  # 4 label 2
    [0.20, 0.10, 0.70],  # 5 label 2
    [0.35, 0.33, 0.32],  # 6 label 0: no class reaches its threshold -> not an issue
    [0.05, 0.50, 0.45],  # 7 label 2: 0.50 >= t_1 = 0.45 -> confidently a 1 -> issue
])
LABELS = np.array([0, 0, 1, 1, 2, 2, 0, 2])


def test_hand_worked_case():
    assert self_confidence(PROBS, LABELS) == pytest.approx(
        [0.90, 0.70, 0.80, 0.10, 0.80, 0.70, 0.35, 0.45])
    # t_0 = (0.90 + 0.70 + 0.35)/3, t_1 = (0.80 + 0.10)/2, t_2 = (0.80 + 0.70 + 0.45)/3
    assert per_class_thresholds(PROBS, LABELS) == pytest.approx([0.65, 0.45, 0.65])
    assert label_issues(PROBS, LABELS).tolist() == [False, False, False, True,
                                                    False, False, False, True]
    # rows: given label; columns: the confident class (example 6 has none)
    assert confident_joint(PROBS, LABELS).tolist() == [[2, 0, 0], [1, 1, 0], [0, 1, 2]]
    # issues first (3: 0.10, 7: 0.45), then the rest by ascending self-confidence, ties stable
    assert rank_label_issues(PROBS, LABELS).tolist() == [3, 7, 6, 1, 5, 2, 4, 0]
    assert rank_label_issues(PROBS, LABELS, "self_confidence").tolist() == [3, 6, 7, 1, 5, 2,
                                                                            4, 0]


def test_per_class_thresholds_differ_from_one_global_threshold():
    # class 0 is easy (the model is sure of it), class 1 hard: an example labelled 1 with
    # p_0 = 0.6 is not confidently a 0 (t_0 = 0.95), one labelled 0 with p_1 = 0.6 is
    # confidently a 1 (t_1 = 0.5)
    probs = np.array([[0.99, 0.01], [0.99, 0.01], [0.91, 0.09], [0.40, 0.60],
                      [0.50, 0.50], [0.50, 0.50], [0.60, 0.40]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    t = per_class_thresholds(probs, labels)
    assert t == pytest.approx([(0.99 + 0.99 + 0.91 + 0.40) / 4, (0.5 + 0.5 + 0.4) / 3])
    assert label_issues(probs, labels).tolist() == [False, False, False, True,
                                                    False, False, False]


def test_an_example_the_model_predicts_as_its_label_is_not_an_issue():
    probs = np.array([[0.90, 0.05, 0.05],   # label 0
                      [0.08, 0.46, 0.46],   # label 1: t_1 = 0.46
                      [0.05, 0.40, 0.55],   # label 2
                      [0.05, 0.47, 0.48]])  # label 2: t_2 = (0.55 + 0.48)/2 = 0.515
    labels = np.array([0, 1, 2, 2])
    assert per_class_thresholds(probs, labels) == pytest.approx([0.90, 0.46, 0.515])
    # example 3 is confidently a 1 (0.47 >= 0.46; 0.48 < 0.515): off the diagonal ...
    assert confident_joint(probs, labels).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    # ... but the model's own argmax is its label 2: not an issue
    assert not label_issues(probs, labels).any()
    probs[3] = [0.05, 0.49, 0.46]  # now its argmax is 1 too: an issue
    assert label_issues(probs, labels).tolist() == [False, False, False, True]


def test_a_class_without_examples_is_never_confident():
    probs = np.array([[0.2, 0.1, 0.7], [0.8, 0.1, 0.1]])
    labels = np.array([0, 0])
    assert per_class_thresholds(probs, labels)[1:].tolist() == [np.inf, np.inf]
    assert not label_issues(probs, labels).any()


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5), st.integers(1, 40), st.integers(0, 2**31))
def test_permuting_the_examples_permutes_the_issues(k, n, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    labels = rng.integers(0, k, size=n)
    perm = rng.permutation(n)
    issues = label_issues(probs, labels)
    assert (label_issues(probs[perm], labels[perm]) == issues[perm]).all()
    ranked = rank_label_issues(probs, labels)
    assert sorted(ranked.tolist()) == list(range(n))
    # every flagged example comes before every unflagged one
    assert (np.diff(issues[ranked].astype(int)) <= 0).all()


@pytest.mark.parametrize("probs, labels, match", [
    (np.ones(3), [0, 0, 0], r"probs must be \(N, K\)"),
    (np.ones((3, 2)) / 2, [0, 1], r"labels must be \(N,\) integers with N = 3"),
    (np.ones((2, 2)) / 2, [0, 2], r"labels must be in 0..1 \(probs has 2 columns\)"),
    (np.full((2, 2), np.nan), [0, 1], "probs must be finite"),
])
def test_bad_input(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        label_issues(probs, np.asarray(labels))
    with pytest.raises(ValueError, match="method must be"):
        rank_label_issues(np.ones((2, 2)) / 2, np.array([0, 1]), method="margin")


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 8), st.integers(0, 2**31))
def test_agrees_with_cleanlab(k, seed):
    """cleanlab (Northcutt et al.'s own library), when installed, as the oracle: the same
    confident joint (uncalibrated), the same label issues, ranked the same by self-confidence.
    Not a test dependency (it pulls scikit-learn and pandas); skipped without it."""
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    cleanlab_count = pytest.importorskip("cleanlab.count")
    rng = np.random.default_rng(seed)
    n = 300
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])  # every class present
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cj = cleanlab_count.compute_confident_joint(labels, probs, calibrate=False)
    assert (confident_joint(probs, labels) == cj).all()
    theirs = cleanlab_filter.find_label_issues(labels, probs, filter_by="confident_learning")
    assert (label_issues(probs, labels) == theirs).all()
    ranked = cleanlab_filter.find_label_issues(labels, probs, filter_by="confident_learning",
                                               return_indices_ranked_by="self_confidence")
    assert rank_label_issues(probs, labels)[:len(ranked)].tolist() == ranked.tolist()
