"""Registry entries for batch normalization (tests/opinfo.py).

The running statistics are arguments 3 and 4 and are marked ``constant``: they are state
updated in place, not differentiable inputs.
"""

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from tests.opinfo import ErrorCase, OpInfo, Sample


def _stats(r, c):
    return r.normal(size=c), r.uniform(0.5, 2.0, size=c)  # running mean, running var


def _bn(r, shape, training, affine=True, track=True, **kwargs):
    c = shape[-1]
    x = r.normal(size=shape)
    gamma = r.uniform(0.5, 1.5, size=c) if affine else None
    beta = r.normal(size=c) if affine else None
    rm, rv = _stats(r, c) if track else (None, None)
    return Sample(
        (x, gamma, beta, rm, rv),
        {"training": training, **kwargs},
        name=f"{shape} training={training} affine={affine} track={track}",
        constant=(3, 4),
    )


def _samples(r):
    return [
        _bn(r, (3, 2, 3, 2), True),
        _bn(r, (2, 3, 2, 3), False),
        _bn(r, (5, 4), True),
        _bn(r, (3, 4), False),
        # m = 2, the smallest batch allowed in training. With a tiny eps, x_hat is +-1 whatever
        # x is and gx is ~0 (finite differences then only see noise): a large eps keeps it alive
        _bn(r, (2, 1, 1, 3), True, eps=0.5, momentum=0.5),
        _bn(r, (1, 3), False),  # one example is fine in eval
        _bn(r, (4, 3), True, affine=False),
        _bn(r, (4, 2, 2, 3), True, track=False),
    ]


def _t(*shape, dtype=np.float64):
    return cl.tensor(np.ones(shape, dtype=dtype))


def _errors():
    ones = np.ones
    return [
        ErrorCase(
            (_t(2, 3, 4), _t(4), _t(4), ones(4), ones(4), True),
            {},
            ValueError,
            r"batch_norm: x must be 2-D \(N, F\) or 4-D \(N, H, W, C\); "
            r"received x.shape=\(2, 3, 4\)",
        ),
        ErrorCase(
            (_t(2, 5, 5, 3), _t(4), _t(4), ones(4), ones(4), True),
            {},
            ValueError,
            r"batch_norm: x has 3 channels \(last axis\) but gamma has shape \(4,\); "
            r"gamma must be \(3,\); received x.shape=\(2, 5, 5, 3\)",
        ),
        ErrorCase(
            (cl.tensor(ones((2, 3), dtype=int)), _t(3), _t(3), ones(3), ones(3), True),
            {},
            TypeError,
            r"batch_norm: x must be a floating-point tensor",
        ),
        ErrorCase(
            (_t(1, 3), _t(3), _t(3), ones(3), ones(3), True),
            {},
            ValueError,
            r"batch_norm: training needs more than one value per channel to compute a "
            r"batch variance; received x.shape=\(1, 3\) \(1 value per channel\)",
        ),
        ErrorCase(
            (_t(1, 1, 1, 3), _t(3), _t(3), ones(3), ones(3)),
            {"training": True},
            ValueError,
            r"received x.shape=\(1, 1, 1, 3\) \(1 value per channel\)",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), ones(4), ones(3), True),
            {},
            ValueError,
            r"batch_norm: running_mean must have shape \(3,\), one value per channel; "
            r"received running_mean.shape=\(4,\)",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), None, None, False),
            {},
            ValueError,
            r"batch_norm: eval \(training=False\) needs running_mean and running_var",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), ones(3), None, True),
            {},
            ValueError,
            r"batch_norm: give both running_mean and running_var, or neither",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), [0.0, 0.0, 0.0], ones(3), True),
            {},
            TypeError,
            r"batch_norm: running_mean must be a NumPy array or a Tensor \(it is updated "
            r"in place\); received list",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), ones(3), ones(3, dtype=int), True),
            {},
            TypeError,
            r"batch_norm: running_var must be float32 or float64; received dtype int",
        ),
        ErrorCase(
            (_t(2, 3), _t(3, dtype=np.float32), _t(3), ones(3), ones(3), True),
            {},
            TypeError,
            r"batch_norm: x is float64 but gamma is float32",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), ones(3), ones(3), True),
            {"momentum": 1.5},
            ValueError,
            r"batch_norm: momentum must be in \[0, 1\]; received 1.5",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), ones(3), ones(3), True),
            {"eps": 0.0},
            ValueError,
            r"batch_norm: eps must be > 0; received 0.0",
        ),
        ErrorCase(
            (_t(2, 3), _t(3), _t(3), ones(3), ones(3), "yes"),
            {},
            TypeError,
            r"batch_norm: training must be True or False; received 'yes'",
        ),
    ]


OPS = [OpInfo("batch_norm", F.batch_norm, _samples, errors=_errors)]
