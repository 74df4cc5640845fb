"""Registry entries for elementwise, reduce, shape and linear ops."""

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from tests.opinfo import ErrorCase, OpInfo, Sample


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


OPS = [
    OpInfo(
        "add_broadcast",
        lambda a, b: a + b,
        lambda r: [
            Sample((r.normal(size=(3, 4)), r.normal(size=(4,)))),
            Sample((r.normal(size=(2, 1, 3)), r.normal(size=(4, 1)))),
        ],
    ),
    OpInfo(
        "sub",
        lambda a, b: a - b,
        lambda r: [Sample((r.normal(size=(3, 1)), r.normal(size=(1, 5))))],
    ),
    OpInfo(
        "mul",
        lambda a, b: a * b,
        lambda r: [Sample((r.normal(size=(2, 3)), r.normal(size=(2, 3))))],
    ),
    OpInfo("div", lambda a, b: a / b, lambda r: [Sample((r.normal(size=(2, 3)), _pos(r, 3)))]),
    OpInfo("pow", lambda a: a**3, lambda r: [Sample((r.normal(size=(2, 3)),))]),
    OpInfo("neg", lambda a: -a, lambda r: [Sample((r.normal(size=(4,)),))]),
    OpInfo("exp", F.exp, lambda r: [Sample((r.normal(size=(2, 3)),))]),
    OpInfo("log", F.log, lambda r: [Sample((_pos(r, 2, 3),))]),
    OpInfo("sqrt", F.sqrt, lambda r: [Sample((_pos(r, 2, 3),))]),
    OpInfo(
        "matmul",
        F.matmul,
        lambda r: [
            Sample((r.normal(size=(3, 4)), r.normal(size=(4, 2)))),
            Sample((r.normal(size=(2, 3, 4)), r.normal(size=(4, 5)))),
            Sample((r.normal(size=(4,)), r.normal(size=(4, 2)))),
            Sample((r.normal(size=(3, 4)), r.normal(size=(4,)))),
        ],
        errors=lambda: [
            ErrorCase(
                (np.ones((2, 3)), np.ones((4, 2))),
                {},
                ValueError,
                r"matmul: inner dimensions differ; received \(2, 3\) @ \(4, 2\)",
            )
        ],
    ),
    OpInfo(
        "linear",
        F.linear,
        lambda r: [
            Sample((r.normal(size=(3, 4)), r.normal(size=(4, 2)), r.normal(size=(2,)))),
            Sample((r.normal(size=(1, 4)), r.normal(size=(4, 2)))),
        ],
        errors=lambda: [
            ErrorCase(
                (cl.tensor(np.ones((2, 3))), cl.tensor(np.ones((4, 2)))),
                {},
                ValueError,
                r"linear: x has 3 features but w expects 4",
            ),
            ErrorCase(
                (cl.tensor(np.ones((2, 3), dtype=int)), cl.tensor(np.ones((3, 2)))),
                {},
                TypeError,
                r"linear: x must be a floating-point tensor",
            ),
        ],
    ),
    OpInfo(
        "sum_axis",
        lambda a: a.sum(axis=(0, 2), keepdims=True),
        lambda r: [Sample((r.normal(size=(2, 3, 4)),))],
    ),
    OpInfo("sum_all", lambda a: a.sum(), lambda r: [Sample((r.normal(size=(2, 3)),))]),
    OpInfo("mean", lambda a: a.mean(axis=1), lambda r: [Sample((r.normal(size=(2, 3, 4)),))]),
    OpInfo("max", lambda a: a.max(axis=-1), lambda r: [Sample((r.normal(size=(3, 5)),))]),
    OpInfo(
        "reshape",
        lambda a: a.reshape(4, -1),
        lambda r: [Sample((r.normal(size=(2, 3, 4)),))],
        errors=lambda: [ErrorCase((cl.tensor(np.ones(6)),), {}, ValueError, r"reshape")],
    ),
    OpInfo(
        "transpose", lambda a: a.transpose(2, 0, 1), lambda r: [Sample((r.normal(size=(2, 3, 4)),))]
    ),
    OpInfo("flatten", lambda a: a.flatten(), lambda r: [Sample((r.normal(size=(2, 3, 4, 2)),))]),
    OpInfo("getitem", lambda a: a[1:, ::2], lambda r: [Sample((r.normal(size=(3, 5)),))]),
    OpInfo(  # basic indexing: an integer, a negative step, None and Ellipsis
        "getitem_basic",
        lambda a: a[1, ::-2, None, ...],
        lambda r: [Sample((r.normal(size=(3, 5, 2)),))],
    ),
    OpInfo(  # an integer array mixed with a slice: repeats add
        "getitem_mixed",
        lambda a: a[np.array([2, 0, 2]), 1:],
        lambda r: [Sample((r.normal(size=(3, 4)),))],
    ),
    OpInfo(  # a boolean mask
        "getitem_mask",
        lambda a: a[np.array([True, False, True])],
        lambda r: [Sample((r.normal(size=(3, 2)),))],
    ),
    OpInfo(
        "getitem_repeat",
        lambda a: a[np.array([0, 0, 2])],
        lambda r: [Sample((r.normal(size=(3, 2)),))],
    ),
    OpInfo(
        "concat",
        lambda a, b: cl.concat([a, b], axis=-1 if a.ndim == 3 else 1),
        lambda r: [Sample((r.normal(size=(2, 3, 1)), r.normal(size=(2, 3, 4))))],
        errors=lambda: [
            ErrorCase(
                (np.ones((2, 3)), np.ones((3, 3))),
                {},
                ValueError,
                r"concat: all shapes must match except on axis 1",
            )
        ],
    ),
    OpInfo(
        "stack",
        lambda a, b: cl.stack([a, b], axis=1),
        lambda r: [Sample((r.normal(size=(2, 3)), r.normal(size=(2, 3))))],
    ),
    OpInfo(
        "pad",
        lambda a: cl.pad(a, ((0, 0), (1, 2), (2, 0))),
        lambda r: [Sample((r.normal(size=(2, 3, 2)),))],
    ),
]
