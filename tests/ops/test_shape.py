"""cl.pad (ops/shape.py Pad) against NumPy's np.pad, the oracle: values, fill values, dtypes,
the gradient (the interior of gy), and a fill the dtype cannot hold."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl


@pytest.mark.parametrize("widths", [((0, 0), (1, 2), (2, 0)), 1, ((3, 0), (0, 0), (0, 1))])
@pytest.mark.parametrize("value", [0.0, -np.inf, 2.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pad_matches_numpy(widths, value, dtype):
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(dtype)
    t = cl.tensor(x, requires_grad=True)
    y = cl.pad(t, widths, value)
    want = np.pad(x, widths, constant_values=value)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), want)
    gy = np.random.default_rng(1).normal(size=want.shape).astype(dtype)
    y.backward(gy)
    inner = np.pad(np.ones_like(x, dtype=bool), widths)  # where x landed
    np.testing.assert_array_equal(t.grad, gy[inner].reshape(x.shape))


def test_pad_integers_and_a_fill_they_cannot_hold():
    x = cl.tensor(np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(cl.pad(x, 1, 7).numpy(), np.pad(x.numpy(), 1,
                                                                  constant_values=7))
    with pytest.raises(ValueError):
        cl.pad(x, 1, np.nan)  # as np.pad: NaN is no integer
