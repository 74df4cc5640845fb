"""Registry entries for the activations (relu ... log_softmax) and dropout.

Samples for relu and leaky_relu keep every value at least 0.1 away from the kink at 0, so the
finite differences of the float64 gradient check never straddle it. Dropout samples pass an
integer seed, so every call that gradcheck makes draws the same mask.
"""

import re

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from tests.opinfo import ErrorCase, OpInfo, Sample


def _away_from_zero(r, *shape):
    """Values in +-[0.1, 2]: no kink of relu/leaky_relu within reach of the finite differences."""
    return r.uniform(0.1, 2.0, size=shape) * r.choice([-1.0, 1.0], size=shape)


def _ints(*shape):
    return cl.tensor(np.ones(shape, dtype=np.int64))


def _floats(*shape):
    return cl.tensor(np.ones(shape))


def _not_float(op):
    msg = f"{op}: x must be a floating-point tensor (float32 or float64); received dtype int64"
    return re.escape(msg)


def _axis_errors(op):
    return [
        ErrorCase((_ints(2, 3),), {}, TypeError, _not_float(op)),
        ErrorCase(
            (_floats(2, 3),),
            {"axis": 2},
            ValueError,
            re.escape(
                f"{op}: axis 2 is out of range for a tensor with 2 axes (valid: -2 to 1); "
                "received x.shape=(2, 3)"
            ),
        ),
        ErrorCase(
            (_floats(2, 3),),
            {"axis": -3},
            ValueError,
            re.escape(f"{op}: axis -3 is out of range for a tensor with 2 axes"),
        ),
        ErrorCase(
            (_floats(2, 3),),
            {"axis": 1.0},
            TypeError,
            re.escape(f"{op}: axis must be an int; received float 1.0"),
        ),
        ErrorCase(
            (_floats(2, 3),),
            {"axis": None},
            TypeError,
            re.escape(f"{op}: axis must be an int; received NoneType None"),
        ),
    ]


def _softmax_samples(r):
    return [
        Sample((r.normal(size=(3, 5)),)),
        Sample((r.normal(size=(2, 3, 4)),), {"axis": 1}),
        Sample((3 * r.normal(size=(4, 3)),), {"axis": 0}),
        Sample((r.normal(size=(2, 2, 2, 3)),), {"axis": -1}),  # NHWC: over channels
        Sample((r.normal(size=(6,)),)),
    ]


_DROPOUT_RATE = re.escape(
    "dropout: rate must satisfy 0 <= rate < 1 (the probability of dropping a unit); "
)


OPS = [
    OpInfo(
        "relu",
        F.relu,
        lambda r: [Sample((_away_from_zero(r, 3, 4),)), Sample((_away_from_zero(r, 2, 3, 3, 2),))],
        errors=lambda: [ErrorCase((_ints(2, 3),), {}, TypeError, _not_float("relu"))],
    ),
    OpInfo(
        "leaky_relu",
        F.leaky_relu,
        lambda r: [
            Sample((_away_from_zero(r, 3, 4),)),
            Sample((_away_from_zero(r, 2, 3, 3, 2),), {"slope": 0.2}),
            Sample((_away_from_zero(r, 5),), {"slope": -0.5}),
            Sample((_away_from_zero(r, 2, 4),), {"slope": 0.0}),
        ],
        errors=lambda: [
            ErrorCase((_ints(2, 3),), {}, TypeError, _not_float("leaky_relu")),
            ErrorCase(
                (_floats(2, 3),),
                {"slope": "0.1"},
                TypeError,
                re.escape("leaky_relu: slope must be a real number; received str '0.1'"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"slope": float("nan")},
                ValueError,
                re.escape("leaky_relu: slope must be finite; received slope=nan"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"slope": float("inf")},
                ValueError,
                re.escape("leaky_relu: slope must be finite; received slope=inf"),
            ),
        ],
    ),
    OpInfo(
        "sigmoid",
        F.sigmoid,
        lambda r: [
            Sample((3 * r.normal(size=(3, 4)),)),
            Sample((np.array([-12.0, -3.0, -0.5, 0.0, 0.5, 3.0, 12.0]),)),
        ],
        errors=lambda: [ErrorCase((_ints(2, 3),), {}, TypeError, _not_float("sigmoid"))],
    ),
    OpInfo(
        "tanh",
        F.tanh,
        lambda r: [Sample((2 * r.normal(size=(3, 4)),)), Sample((r.normal(size=(2, 2, 2, 3)),))],
        errors=lambda: [ErrorCase((_ints(2, 3),), {}, TypeError, _not_float("tanh"))],
    ),
    OpInfo("softmax", F.softmax, _softmax_samples, errors=lambda: _axis_errors("softmax")),
    OpInfo(
        "log_softmax", F.log_softmax, _softmax_samples, errors=lambda: _axis_errors("log_softmax")
    ),
    OpInfo(
        "dropout",
        F.dropout,
        lambda r: [
            Sample((r.normal(size=(4, 5)),), {"rate": 0.5, "rng": 0}),
            Sample((r.normal(size=(2, 3, 3, 2)),), {"rate": 0.2, "rng": 123}),
            Sample((r.normal(size=(3, 4)),), {"rate": 0.9, "rng": 7}),
            Sample((r.normal(size=(3, 4)),), {"rate": 0.5, "training": False}),
            Sample((r.normal(size=(3, 4)),), {"rate": 0.0}),
        ],
        errors=lambda: [
            ErrorCase((_ints(2, 3),), {"rate": 0.5}, TypeError, _not_float("dropout")),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": 1.0},
                ValueError,
                _DROPOUT_RATE + re.escape("received rate=1.0"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": -0.1},
                ValueError,
                _DROPOUT_RATE + re.escape("received rate=-0.1"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": float("nan")},
                ValueError,
                _DROPOUT_RATE + re.escape("received rate=nan"),
            ),
            # checked in evaluation mode too: a wrong rate must not wait for training
            ErrorCase(
                (_floats(2, 3),),
                {"rate": 1.5, "training": False},
                ValueError,
                _DROPOUT_RATE + re.escape("received rate=1.5"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": "0.5"},
                TypeError,
                re.escape("dropout: rate must be a real number in [0, 1); received str '0.5'"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": 0.5, "training": "yes"},
                TypeError,
                re.escape("dropout: training must be True or False; received str 'yes'"),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": 0.5, "rng": "seed"},
                TypeError,
                re.escape(
                    "dropout: rng must be an int, None or a "
                    "numpy.random.Generator; received 'seed'"
                ),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": 0.5, "rng": np.random.RandomState(0)},
                TypeError,
                re.escape(
                    "dropout: rng must be an int, None or a "
                    "numpy.random.Generator; received RandomState"
                ),
            ),
            ErrorCase(
                (_floats(2, 3),),
                {"rate": 0.5, "rng": -1},
                ValueError,
                re.escape("dropout: an int seed must be >= 0; received rng=-1"),
            ),
        ],
    ),
]
