"""Registry entries for the losses (tests/opinfo.py).

Integer labels and masks are not floating arrays, so they are never differentiated; float
targets are checked too (the losses give their gradient) unless marked ``constant``.
"""

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from tests.opinfo import ErrorCase, OpInfo, Sample


def _probs(r, n, k):
    p = r.uniform(0.1, 1.0, size=(n, k))
    return p / p.sum(axis=1, keepdims=True)


def _ce_samples(r):
    return [
        Sample((r.normal(size=(4, 5)), r.integers(0, 5, size=4)), name="labels"),
        Sample((r.normal(size=(1, 3)), np.array([2])), name="one example"),
        Sample((r.normal(size=(3, 4)), cl.tensor(np.array([3, 0, 1]))), name="int Tensor"),
        Sample(
            (r.normal(size=(3, 4)), r.integers(0, 4, size=3)),
            {"label_smoothing": 0.2},
            name="labels, smoothing",
        ),
        Sample((r.normal(size=(3, 4)), _probs(r, 3, 4)), name="probabilities, both checked"),
        Sample(
            (r.normal(size=(3, 4)), _probs(r, 3, 4)),
            {"label_smoothing": 0.1},
            name="probabilities, smoothing",
            constant=(1,),
        ),
        Sample((r.normal(size=(2, 1)), np.array([0, 0])), name="one class"),
    ]


def _bce_samples(r):
    y_nan = r.integers(0, 2, size=(3, 4)).astype(float)
    mask = r.random((3, 4)) < 0.6
    mask[0, 0] = True
    y_nan[~mask] = np.nan  # unknown labels may hold anything
    return [
        Sample((r.normal(size=(5,)), r.integers(0, 2, size=5).astype(float)), name="1-D"),
        Sample((r.normal(size=(3, 4)), r.uniform(size=(3, 4))), name="soft targets"),
        Sample((r.normal(size=(3, 4)), y_nan, mask), name="bool mask, NaN where unknown"),
        Sample(
            (r.normal(size=(2, 3)), r.uniform(size=(2, 3)), np.array([[1, 0, 1], [0, 0, 1]])),
            name="0/1 int mask",
            constant=(1,),
        ),
        Sample(
            (r.normal(size=(2, 3)), r.uniform(size=(2, 3)), np.zeros((2, 3), dtype=bool)),
            name="nothing known",
        ),
    ]


def _t(*shape):
    return cl.tensor(np.zeros(shape))


def _ce_errors():
    return [
        ErrorCase(
            (_t(4, 3), np.array([0, 3, 1, -1])),
            {},
            ValueError,
            r"cross_entropy: labels must be in \[0, 3\) for logits with 3 classes; "
            r"received label value\(s\) -1, 3 \(2 of 4 labels out of range\)",
        ),
        ErrorCase(
            (_t(2, 3), cl.tensor(np.array([0, 7]))),
            {},
            ValueError,
            r"cross_entropy: labels must be in \[0, 3\).*received label value\(s\) 7 ",
        ),
        ErrorCase(
            (_t(2, 3), np.array([0, 1, 2])),
            {},
            ValueError,
            r"cross_entropy: integer labels must have shape \(2,\), one per example of "
            r"logits \(2, 3\); received target.shape=\(3,\)",
        ),
        ErrorCase(
            (_t(2, 3), np.zeros((2, 4))),
            {},
            ValueError,
            r"cross_entropy: a floating target is read as class probabilities and must "
            r"have the shape of logits \(2, 3\); received target.shape=\(2, 4\)",
        ),
        ErrorCase(
            (_t(2, 3), np.array([0.0, 1.0])),
            {},
            ValueError,
            r"cross_entropy: a floating target .* received target.shape=\(2,\) \(pass "
            r"class labels as an integer array of shape \(2,\)\)",
        ),
        ErrorCase(
            (_t(2, 3, 1), np.array([0, 1])),
            {},
            ValueError,
            r"cross_entropy: logits must be 2-D \(N, K\); received logits.shape=\(2, 3, 1\)",
        ),
        ErrorCase(
            (cl.tensor(np.zeros((2, 3), dtype=int)), np.array([0, 1])),
            {},
            TypeError,
            r"cross_entropy: logits must be a floating-point tensor",
        ),
        ErrorCase(
            (_t(2, 3), np.array([True, False])),
            {},
            TypeError,
            r"cross_entropy: target must be integer labels \(N,\) or float probabilities "
            r"\(N, K\); received dtype bool",
        ),
        ErrorCase(
            (_t(2, 3), np.array([0, 1])),
            {"label_smoothing": 1.5},
            ValueError,
            r"cross_entropy: label_smoothing must be in \[0, 1\]; received 1.5",
        ),
        ErrorCase(
            (_t(0, 3), np.zeros(0, dtype=int)),
            {},
            ValueError,
            r"cross_entropy: logits must have at least one example and one class",
        ),
        ErrorCase(
            (_t(2, 3), cl.tensor(np.zeros((2, 3), dtype=np.float32), requires_grad=True)),
            {},
            TypeError,
            r"cross_entropy: logits is float64 but target is float32",
        ),
    ]


def _bce_errors():
    op = "binary_cross_entropy_with_logits"
    return [
        ErrorCase(
            (_t(2, 3), np.zeros((3, 2))),
            {},
            ValueError,
            rf"{op}: target must have the shape of logits \(2, 3\); "
            r"received target.shape=\(3, 2\)",
        ),
        ErrorCase(
            (_t(2, 3), np.zeros((2, 3)), np.ones((2, 1))),
            {},
            ValueError,
            rf"{op}: mask must have the shape of logits \(2, 3\); "
            r"received mask.shape=\(2, 1\)",
        ),
        ErrorCase(
            (_t(2, 3), np.zeros((2, 3)), np.full((2, 3), 2)),
            {},
            ValueError,
            rf"{op}: mask must be bool or hold only 0 and 1 \(1 = label known\); "
            r"received dtype int64 with other values",
        ),
        ErrorCase(
            (cl.tensor(np.zeros(3, dtype=int)), np.zeros(3)),
            {},
            TypeError,
            rf"{op}: logits must be a floating-point tensor",
        ),
    ]


def _mse_errors():
    return [
        ErrorCase(
            (_t(2, 3), np.zeros((3,))),
            {},
            ValueError,
            r"mse_loss: target must have the shape of pred \(2, 3\) \(no broadcasting\); "
            r"received target.shape=\(3,\)",
        ),
        ErrorCase(
            (_t(0, 3), np.zeros((0, 3))),
            {},
            ValueError,
            r"mse_loss: pred is empty; received pred.shape=\(0, 3\)",
        ),
        ErrorCase(
            (cl.tensor(np.zeros(3, dtype=int)), np.zeros(3)),
            {},
            TypeError,
            r"mse_loss: pred must be a floating-point tensor",
        ),
    ]


OPS = [
    OpInfo("cross_entropy", F.cross_entropy, _ce_samples, errors=_ce_errors),
    OpInfo(
        "binary_cross_entropy_with_logits",
        F.binary_cross_entropy_with_logits,
        _bce_samples,
        errors=_bce_errors,
    ),
    OpInfo(
        "mse_loss",
        F.mse_loss,
        lambda r: [
            Sample((r.normal(size=(3, 4)), r.normal(size=(3, 4))), name="both"),
            Sample(
                (r.normal(size=(2, 2, 2, 3)), r.normal(size=(2, 2, 2, 3))),
                name="target constant",
                constant=(1,),
            ),
        ],
        errors=_mse_errors,
    ),
]
