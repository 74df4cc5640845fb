"""Multitask (multi-label) learning with unknown labels: the masked loss, the per-task metrics,
and a synthetic multi-label image task learned with fit."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import models, optim
from cnnlab.train import fit, predict


def bce_oracle(z, y, known):
    """Mean over the known entries of -[y log s + (1 - y) log(1 - s)], s = 1 / (1 + e^-z)."""
    s = 1 / (1 + np.exp(-z))
    terms = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    return terms[known].sum() / known.sum()


def test_masked_bce_against_formula_and_gradients():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4))
    y = (rng.random((6, 4)) < 0.5).astype(float)
    known = rng.random((6, 4)) < 0.7
    y_nan = np.where(known, y, np.nan)
    loss = models.masked_bce(cl.tensor(z, requires_grad=True), y_nan)
    assert float(loss.data) == pytest.approx(bce_oracle(z, y, known), rel=1e-12)
    # the same with an explicit mask: values under the mask are ignored, whatever they are
    garbage = np.where(known, y, 7.0)
    loss2 = models.masked_bce(cl.tensor(z), garbage, mask=known)
    assert float(loss2.data) == pytest.approx(float(loss.data), rel=1e-12)
    # gradient: finite differences, and exactly zero for the unknown labels
    assert cl.gradcheck(lambda t: models.masked_bce(t, y_nan), [z]) < 1e-7
    t = cl.tensor(z, requires_grad=True)
    models.masked_bce(t, y_nan).backward()
    assert np.all(t.grad[~known] == 0)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(t.grad[known], (s - y)[known] / known.sum(), rtol=1e-10)


def test_masked_bce_errors_and_float32():
    z = cl.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    loss = models.masked_bce(z, np.array([[1, 0, np.nan], [np.nan, np.nan, 1]]))
    assert loss.dtype == np.float32
    with pytest.raises(ValueError, match=r"masked_bce: target must have the shape of logits "
                                         r"\(2, 3\); received target.shape=\(2, 2\)"):
        models.masked_bce(z, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"masked_bce: mask must have the shape of target"):
        models.masked_bce(z, np.zeros((2, 3)), mask=np.ones((3, 2), bool))


def test_per_task_metrics_by_hand():
    logits = np.array([[2.0, -1.0, 0.5],
                       [-3.0, 1.0, -0.5],
                       [1.0, 2.0, 0.1],
                       [-1.0, -2.0, 3.0]])
    target = np.array([[1, 0, np.nan],
                       [0, 0, np.nan],
                       [0, 1, np.nan],
                       [np.nan, 1, np.nan]])
    m = models.per_task_metrics(logits, target)
    # task 0: rows 0-2 known; predictions 1, 0, 1; truth 1, 0, 0 -> 2 right, TP 1, FP 1, FN 0
    # task 1: all known; predictions 0, 1, 1, 0; truth 0, 0, 1, 1 -> 2 right, TP 1, FP 1, FN 1
    # task 2: nothing known
    np.testing.assert_allclose(m["accuracy"][:2], [2 / 3, 2 / 4])
    np.testing.assert_allclose(m["precision"][:2], [1 / 2, 1 / 2])
    np.testing.assert_allclose(m["recall"][:2], [1 / 1, 1 / 2])
    np.testing.assert_allclose(m["f1"][:2], [2 / 3, 1 / 2])
    assert np.isnan(m["accuracy"][2]) and np.isnan(m["f1"][2])
    np.testing.assert_array_equal(m["known"], [3, 4, 0])
    np.testing.assert_array_equal(m["positive"], [1, 2, 0])
    np.testing.assert_array_equal(models.predict_labels(logits[:1], threshold=0.9), [[0, 0, 0]])
    np.testing.assert_array_equal(models.per_task_accuracy(logits, target)[:2], m["accuracy"][:2])
    with pytest.raises(ValueError, match=r"predict_labels: threshold must be in \(0, 1\)"):
        models.predict_labels(logits, threshold=1.0)


def test_multilabel_head_module():
    head = models.MultiLabelHead(8, 3, seed=0)
    x = cl.tensor(np.ones((2, 8), np.float32))
    z = head(x)
    assert z.shape == (2, 3)
    np.testing.assert_allclose(head.probabilities(x).numpy(), 1 / (1 + np.exp(-z.numpy())),
                               rtol=1e-6)


# ------------------------------------------------------------------------ learning
def multilabel_images(n, size=16, seed=0, missing=0.3):
    """Each quadrant holds a bright square with probability 1/2; task t = "quadrant t has one".

    A fraction ``missing`` of the labels is unknown (NaN). Returns x, the full labels and the
    labels with the unknown ones blanked out.
    """
    rng = np.random.default_rng(seed)
    x = 0.3 * rng.normal(size=(n, size, size, 1)).astype(np.float32)
    y = (rng.random((n, 4)) < 0.5).astype(np.float32)
    h = size // 2
    for i in range(n):
        for t in range(4):
            if y[i, t]:
                r = (t // 2) * h + rng.integers(0, h - 4 + 1)
                c = (t % 2) * h + rng.integers(0, h - 4 + 1)
                x[i, r:r + 4, c:c + 4, 0] += 1.5
    partial = np.where(rng.random((n, 4)) < missing, np.nan, y).astype(np.float32)
    return x, y, partial


def test_learns_a_multilabel_task_with_missing_labels():
    x, _, partial = multilabel_images(512, seed=1)
    assert 0.25 < np.isnan(partial).mean() < 0.35
    model = models.multilabel(models.lenet5(input_size=16, seed=0), 4, seed=0)
    assert model.multilabel and model.num_classes == 4
    before = models.per_task_accuracy(predict(model, x), partial)
    history = fit(model, (x, partial), loss=models.masked_bce, metrics=(),
                  optimizer=optim.Adam(model.parameters(), lr=3e-3), epochs=5, batch_size=32,
                  verbose=False)
    assert np.all(np.isfinite(history["loss"]))  # the NaN labels never reached the loss
    assert history["loss"][-1] < 0.5 * history["loss"][0]

    xt, yt, partial_t = multilabel_images(256, seed=2)
    acc = models.per_task_accuracy(predict(model, xt), yt)
    assert np.all(acc > 0.9), acc  # chance is 0.5 for every task
    assert np.all(acc > before + 0.2)
    # the metrics over the known labels only agree with those over the full labels' subset
    m = models.per_task_metrics(predict(model, xt), partial_t)
    known = ~np.isnan(partial_t)
    pred = predict(model, xt) >= 0
    for t in range(4):
        assert m["accuracy"][t] == pytest.approx(np.mean(pred[known[:, t], t]
                                                          == (yt[known[:, t], t] > 0.5)))
