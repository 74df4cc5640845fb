"""Registry entries for the pooling ops (max, average, L_p, global average).

Max pooling gets inputs with distinct, well separated values (a shuffled ramp), so that no
window has a tie and finite differences never cross a change of argmax.
"""

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from tests.opinfo import ErrorCase, OpInfo, Sample


def _distinct(rng, *shape):
    """Values 0.1 apart (plus a little noise), shuffled: no ties, far from each other."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.1 + rng.uniform(0, 0.01, shape)


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _x(*shape):
    return cl.tensor(np.ones(shape))


def _window_samples(make):
    """The same geometries for max and average pooling."""

    def samples(r):
        return [
            Sample((make(r, 2, 4, 4, 3),), {"size": 2}, "tiles"),
            Sample((make(r, 1, 5, 6, 2),), {"size": 3, "stride": 1, "padding": 1}, "overlap"),
            Sample((make(r, 2, 5, 5, 2),), {"size": 2, "stride": 2, "padding": "same"}, "same"),
            Sample(
                (make(r, 1, 5, 7, 2),),
                {"size": (2, 3), "stride": (1, 2), "padding": (1, 1)},
                "rect",
            ),
            Sample((make(r, 1, 6, 5, 1),), {"size": 2, "stride": 3}, "gaps"),
            Sample((make(r, 1, 5, 5, 2),), {"size": 3, "stride": 2, "padding": "same"}, "same-3"),
        ]

    return samples


def _window_errors(op):
    return [
        ErrorCase(
            (_x(2, 4, 4),),
            {"size": 2},
            ValueError,
            rf"{op}: x must be 4-D \(N, H, W, C\); received x.shape=\(2, 4, 4\)",
        ),
        ErrorCase(
            (cl.tensor(np.ones((1, 4, 4, 1), dtype=int)),),
            {"size": 2},
            TypeError,
            rf"{op}: x must be a floating-point tensor \(float32 or float64\); "
            r"received dtype int64",
        ),
        ErrorCase(
            (_x(1, 4, 4, 1),), {"size": 0}, ValueError, rf"{op}: size must be >= 1; received size=0"
        ),
        ErrorCase(
            (_x(1, 4, 4, 1),),
            {"size": 2, "stride": (1, 0)},
            ValueError,
            rf"{op}: stride must be >= 1; received stride=\(1, 0\)",
        ),
        ErrorCase(
            (_x(1, 4, 4, 1),),
            {"size": 3, "padding": 2},
            ValueError,
            rf"{op}: padding must be at most half the window on each side "
            r"\(padding <= size // 2, as in PyTorch\); received padding=2 with size=3",
        ),
        ErrorCase(
            (_x(1, 4, 4, 1),),
            {"size": 2, "padding": "full"},
            ValueError,
            rf"{op}: padding must be 'valid', 'same', an int or a pair of ints; "
            r"received 'full'",
        ),
        ErrorCase(
            (_x(1, 4, 4, 1),),
            {"size": 2, "padding": -1},
            ValueError,
            rf"{op}: padding must be >= 0; received padding=-1",
        ),
        ErrorCase(
            (_x(2, 3, 4, 1),),
            {"size": 6, "padding": 1},
            ValueError,
            rf"{op}: the 6x6 window does not fit in the padded input \(5x6\); H and W "
            r"plus padding must each be at least the window; received "
            r"x.shape=\(2, 3, 4, 1\), size=6, padding=1",
        ),
    ]


OPS = [
    OpInfo(
        "max_pool2d",
        F.max_pool2d,
        _window_samples(_distinct),
        errors=lambda: _window_errors("max_pool2d"),
    ),
    OpInfo(
        "avg_pool2d",
        F.avg_pool2d,
        _window_samples(lambda r, *s: r.normal(size=s)),
        errors=lambda: _window_errors("avg_pool2d"),
    ),
    OpInfo(
        "lp_pool2d",
        F.lp_pool2d,
        lambda r: [
            Sample((r.normal(size=(2, 4, 4, 3)),), {"p": 2, "size": 2}, "l2"),
            Sample((_pos(r, 1, 5, 6, 2),), {"p": 3, "size": 3, "stride": 1}, "p3-overlap"),
            Sample((r.normal(size=(1, 5, 5, 2)),), {"p": 1, "size": 2, "stride": 1}, "p1"),
            Sample(
                (_pos(r, 1, 6, 7, 2),), {"p": 2.5, "size": (2, 3), "stride": (2, 1)}, "p2.5-rect"
            ),
        ],
        errors=lambda: [
            ErrorCase(
                (_x(1, 4, 4, 1),),
                {"p": 0.5, "size": 2},
                ValueError,
                r"lp_pool2d: p must be a finite number >= 1 \(1 sums the window, "
                r"2 is L2 pooling\); received p=0.5",
            ),
            ErrorCase(
                (_x(1, 4, 4, 1),),
                {"p": float("inf"), "size": 2},
                ValueError,
                r"lp_pool2d: p must be a finite number >= 1 .*received p=inf",
            ),
            ErrorCase(
                (_x(1, 4, 4, 1),),
                {"p": True, "size": 2},
                ValueError,
                r"lp_pool2d: p must be a finite number >= 1 .*received p=True",
            ),
            ErrorCase(
                (_x(1, 4, 4),),
                {"p": 2, "size": 2},
                ValueError,
                r"lp_pool2d: x must be 4-D \(N, H, W, C\); received x.shape=\(1, 4, 4\)",
            ),
            ErrorCase(
                (_x(1, 2, 4, 1),),
                {"p": 2, "size": 3},
                ValueError,
                r"lp_pool2d: the 3x3 window does not fit in the padded input \(2x4\)",
            ),
        ],
    ),
    OpInfo(
        "global_avg_pool2d",
        F.global_avg_pool2d,
        lambda r: [
            Sample((r.normal(size=(2, 3, 4, 5)),), name="global"),
            Sample((r.normal(size=(1, 1, 1, 3)),), name="one-cell"),
        ],
        errors=lambda: [
            ErrorCase(
                (_x(2, 3),),
                {},
                ValueError,
                r"global_avg_pool2d: x must be 4-D \(N, H, W, C\); "
                r"received x.shape=\(2, 3\)",
            ),
            ErrorCase(
                (cl.tensor(np.ones((1, 2, 2, 1), dtype=np.int32)),),
                {},
                TypeError,
                r"global_avg_pool2d: x must be a floating-point tensor",
            ),
            ErrorCase(
                (_x(1, 0, 3, 2),),
                {},
                ValueError,
                r"global_avg_pool2d: x needs at least one position \(H, W >= 1\); "
                r"received x.shape=\(1, 0, 3, 2\)",
            ),
        ],
    ),
]
