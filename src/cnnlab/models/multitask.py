"""Multitask (multi-label) learning: one sigmoid output per task, unknown labels masked.

Each image has T yes/no labels (T tasks: "is there a pedestrian", "a car", "a stop sign" ...),
and some are unknown. The network outputs T logits z; p_t = sigmoid(z_t). The cost is the
binary cross-entropy averaged over the KNOWN labels only (the course's multi-task cost with
the '?' entries left out of the sum):

    J = (1 / #known) * sum over known (i, t) of -[y log p + (1 - y) log(1 - p)]

Unknown labels are written as NaN in the target array (or given by an explicit mask).

>>> import numpy as np, cnnlab as cl
>>> from cnnlab.models import lenet5
>>> model = multilabel(lenet5(seed=0), 4, seed=0)      # 4 tasks
>>> logits = model(cl.tensor(np.zeros((2, 28, 28, 1), np.float32)))
>>> y = np.array([[1, 0, np.nan, 1], [np.nan, 1, 0, 0]])
>>> masked_bce(logits, y).shape
()
"""

from __future__ import annotations

import numpy as np

from cnnlab import functional as F
from cnnlab import nn
from cnnlab.metrics import f1_score, ratio
from cnnlab.models.transfer import replace_head
from cnnlab.tensor import Tensor

__all__ = [
    "MultiLabelHead",
    "label_mask",
    "masked_bce",
    "multilabel",
    "per_task_accuracy",
    "per_task_metrics",
    "predict_labels",
]


class MultiLabelHead(nn.Module):
    """T independent logistic outputs on a feature vector: z = x W + b, p_t = sigmoid(z_t).

    ``forward`` returns the logits z (train them with :func:`masked_bce`, which applies the
    sigmoid inside the loss for stability); :meth:`probabilities` gives p. The gradient of the
    loss with respect to z_t is (p_t - y_t) / #known for a known label and 0 for an unknown one.

    Shape:
        (N, in_features) -> (N, num_tasks).

    >>> import numpy as np, cnnlab as cl
    >>> MultiLabelHead(16, 4, seed=0)(cl.tensor(np.zeros((2, 16), np.float32))).shape
    (2, 4)
    """

    def __init__(self, in_features, num_tasks, seed=None, dtype=np.float32):
        super().__init__()
        self.fc = nn.Dense(in_features, num_tasks, init="xavier_uniform", seed=seed,
                           dtype=dtype)

    def forward(self, x):
        return self.fc(x)

    def probabilities(self, x):
        return F.sigmoid(self.fc(x))


def multilabel(model: nn.Module, num_tasks, seed=None) -> nn.Module:
    """Turn a classifier into a multi-label model: its head becomes ``num_tasks`` logits.

    Same as :func:`~cnnlab.models.transfer.replace_head` (in place; returns the model) and
    marks ``model.multilabel = True``; train with ``loss=masked_bce``.

    Shape:
        the model's output becomes (N, num_tasks).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab.models import resnet20
    >>> model = multilabel(resnet20(width=0.25, seed=0), 5, seed=0)
    >>> model(cl.tensor(np.zeros((1, 32, 32, 3), np.float32))).shape
    (1, 5)
    """
    replace_head(model, num_tasks, seed, init="xavier_uniform")
    model.multilabel = True
    return model


def label_mask(target, mask=None) -> np.ndarray:
    """The boolean mask of known labels: ``mask`` if given, else ``~isnan(target)``.

    >>> label_mask(np.array([[1.0, np.nan]]))
    array([[ True, False]])
    """
    y = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=float)
    if mask is None:
        return ~np.isnan(y)
    m = np.asarray(mask)
    if m.shape != y.shape:
        raise ValueError(
            f"masked_bce: mask must have the shape of target {y.shape}; received "
            f"mask.shape={m.shape}"
        )
    return m.astype(bool)


def masked_bce(logits, target, mask=None) -> Tensor:
    """Binary cross-entropy over the known labels (NaN in ``target`` = unknown).

    L = sum over known (i, t) of [max(z, 0) - z y + log(1 + exp(-|z|))] / #known, via
    :func:`cnnlab.functional.binary_cross_entropy_with_logits`; dz = mask (sigmoid(z) - y) /
    #known. Works as ``fit(..., loss=masked_bce, metrics=())``.

    Shape:
        logits, target (and mask): (N, T); output () (a scalar).

    >>> import numpy as np, cnnlab as cl
    >>> z = cl.tensor(np.zeros((1, 2)), requires_grad=True)
    >>> round(float(masked_bce(z, np.array([[1.0, np.nan]]))), 4)   # log 2
    0.6931
    """
    known = label_mask(target, mask)
    y = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=float)
    if y.shape != tuple(logits.shape):
        raise ValueError(
            f"masked_bce: target must have the shape of logits {tuple(logits.shape)}; "
            f"received target.shape={y.shape}"
        )
    filled = np.where(known, y, 0.0).astype(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, filled, known)


def _scores(logits) -> np.ndarray:
    return logits.data if isinstance(logits, Tensor) else np.asarray(logits)


def predict_labels(logits, threshold: float = 0.5) -> np.ndarray:
    """0/1 predictions: sigmoid(z) >= threshold (z >= logit(threshold)), as int.

    >>> predict_labels(np.array([[2.0, -1.0]]))
    array([[1, 0]])
    """
    if not 0 < threshold < 1:
        raise ValueError(f"predict_labels: threshold must be in (0, 1); received {threshold!r}")
    z = _scores(logits)
    return (z >= np.log(threshold / (1 - threshold))).astype(int)


def per_task_accuracy(logits, target, mask=None, threshold: float = 0.5) -> np.ndarray:
    """Accuracy of each task over its known labels: (T,), NaN for a task with none known.

    acc_t = #{i known: pred[i, t] == y[i, t]} / #{i known for t}.

    >>> per_task_accuracy(np.array([[2.0, -1.0], [3.0, 1.0]]), np.array([[1, 1], [0, np.nan]]))
    array([0.5, 0. ])
    """
    return per_task_metrics(logits, target, mask, threshold)["accuracy"]


def per_task_metrics(logits, target, mask=None, threshold: float = 0.5) -> dict:
    """Per-task accuracy, precision, recall, F1 and counts over the known labels.

    Returns a dict of (T,) arrays: ``accuracy``, ``precision`` = TP / (TP + FP), ``recall`` =
    TP / (TP + FN), ``f1`` = 2 P R / (P + R) (NaN where undefined, as everywhere in
    :mod:`cnnlab.metrics`; F1 is 0 when P = R = 0), ``known`` (labels known)
    and ``positive`` (known positives).

    >>> m = per_task_metrics(np.array([[2.0], [-2.0]]), np.array([[1.0], [1.0]]))
    >>> m["accuracy"], m["recall"]
    (array([0.5]), array([0.5]))
    """
    z = _scores(logits)
    known = label_mask(target, mask)
    y = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=float)
    if z.shape != y.shape or z.ndim != 2:
        raise ValueError(
            f"per_task_metrics: logits and target must both be (N, T); received "
            f"{z.shape} and {y.shape}"
        )
    pred = predict_labels(z, threshold).astype(bool)
    truth = np.where(known, y, 0) > 0.5
    tp = np.sum(pred & truth & known, axis=0)
    fp = np.sum(pred & ~truth & known, axis=0)
    fn = np.sum(~pred & truth & known, axis=0)
    correct = np.sum((pred == truth) & known, axis=0)
    count = known.sum(axis=0)

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = f1_score(precision, recall)  # cnnlab.metrics' one rule for undefined ratios: NaN
    return {
        "accuracy": ratio(correct, count),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "known": count,
        "positive": np.sum(truth & known, axis=0),
    }
