"""Activations: hand-computed values, PyTorch forward and backward, stability at extreme inputs.

The float64 gradient checks and the pinned error messages run from the registry
(tests/ops/opinfo_activation.py, via tests/test_opinfo.py).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cnnlab as cl
from cnnlab import functional as F

TOL = {np.float32: 1e-4, np.float64: 1e-9}
DTYPES = [np.float32, np.float64]


def _close(actual, expected, tol):
    """Elementwise agreement, relative to the size of the expected array (values near zero,
    like a softmax gradient that cancels, are judged against the array's scale)."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def _run(fn, x, gy, **kw):
    """y and gx = d<gy, y>/dx from cnnlab."""
    t = cl.tensor(x, requires_grad=True)
    y = fn(t, **kw)
    y.backward(gy)
    return y.numpy(), t.grad


def _run_torch(torch, fn, x, gy):
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = fn(t)
    y.backward(torch.from_numpy(gy.copy()))
    return y.detach().numpy(), t.grad.numpy()


# ------------------------------------------------------------------------- hand-computed values
def test_relu_values_and_gradient():
    x = np.array([-2.0, -1e-3, 0.0, 1e-3, 3.0])
    y, gx = _run(F.relu, x, np.full(5, 2.0))
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, 1e-3, 3.0])
    np.testing.assert_array_equal(gx, [0.0, 0.0, 0.0, 2.0, 2.0])  # 0 at the kink


def test_leaky_relu_values_and_gradient():
    x = np.array([-2.0, 0.0, 3.0])
    y, gx = _run(F.leaky_relu, x, np.ones(3), slope=0.25)
    np.testing.assert_array_equal(y, [-0.5, 0.0, 3.0])
    np.testing.assert_array_equal(gx, [0.25, 0.25, 1.0])  # slope at the kink, as in PyTorch
    y, _ = _run(F.leaky_relu, x, np.ones(3))
    np.testing.assert_array_equal(y, [-0.02, 0.0, 3.0])  # default slope 0.01


def test_sigmoid_and_tanh_values():
    x = np.array([0.0, math.log(3.0), -math.log(3.0)])
    y, gx = _run(F.sigmoid, x, np.ones(3))
    np.testing.assert_allclose(y, [0.5, 0.75, 0.25], rtol=1e-15)
    np.testing.assert_allclose(gx, [0.25, 0.1875, 0.1875], rtol=1e-15)  # y (1 - y)
    y, gx = _run(F.tanh, x, np.ones(3))
    np.testing.assert_allclose(y, [0.0, 0.8, -0.8], rtol=1e-15, atol=1e-16)  # (3-1/3)/(3+1/3)
    np.testing.assert_allclose(gx, [1.0, 0.36, 0.36], rtol=1e-14)  # 1 - y^2


def test_softmax_and_log_softmax_values():
    x = np.array([[0.0, math.log(3.0)], [5.0, 5.0]])
    y, gx = _run(F.softmax, x, np.array([[1.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(y, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    # row 0: y * (gy - <gy, y>) = [0.25 * 0.75, 0.75 * -0.25]; row 1: gy constant -> 0
    np.testing.assert_allclose(gx, [[0.1875, -0.1875], [0.0, 0.0]], rtol=1e-14, atol=1e-16)
    y, gx = _run(F.log_softmax, x, np.array([[1.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(y, np.log([[0.25, 0.75], [0.5, 0.5]]), rtol=1e-15)
    # gy - softmax * sum(gy): [1 - 0.25, 0 - 0.75], [1 - 0.5 * 2, 1 - 0.5 * 2]
    np.testing.assert_allclose(gx, [[0.75, -0.75], [0.0, 0.0]], rtol=1e-14, atol=1e-16)


def test_softmax_axis_picks_the_normalised_axis():
    x = cl.tensor(np.random.default_rng(0).normal(size=(2, 3, 4)))
    for axis in (0, 1, 2, -1):
        y = F.softmax(x, axis=axis).numpy()
        np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-15)
        ls = F.log_softmax(x, axis=axis).numpy()
        np.testing.assert_allclose(np.exp(ls).sum(axis=axis), 1.0, rtol=1e-15)


# ------------------------------------------------------------------------- PyTorch oracle
_SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@settings(max_examples=25, deadline=None)
@given(
    shape=_SHAPES,
    dtype=st.sampled_from(DTYPES),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_elementwise_matches_torch(torch, name, shape, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    x = (scale * rng.normal(size=shape)).astype(dtype)
    gy = rng.normal(size=shape).astype(dtype)
    y, gx = _run(getattr(F, name), x, gy)
    ty, tgx = _run_torch(torch, getattr(torch, name), x, gy)
    assert y.dtype == dtype and gx.dtype == dtype
    _close(y, ty, TOL[dtype])
    _close(gx, tgx, TOL[dtype])


@settings(max_examples=25, deadline=None)
@given(
    shape=_SHAPES,
    dtype=st.sampled_from(DTYPES),
    slope=st.one_of(st.just(0.01), st.just(0.0), st.floats(-2.0, 2.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_leaky_relu_matches_torch(torch, shape, dtype, slope, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(dtype)
    x.flat[0] = 0.0  # the kink: both take the slope there
    gy = rng.normal(size=shape).astype(dtype)
    y, gx = _run(F.leaky_relu, x, gy, slope=slope)
    lr = torch.nn.functional.leaky_relu
    ty, tgx = _run_torch(torch, lambda t: lr(t, negative_slope=slope), x, gy)
    assert y.dtype == dtype and gx.dtype == dtype
    _close(y, ty, TOL[dtype])
    _close(gx, tgx, TOL[dtype])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    shape=_SHAPES,
    dtype=st.sampled_from(DTYPES),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_softmax_family_matches_torch(torch, name, data, shape, dtype, scale, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    rng = np.random.default_rng(seed)
    x = (scale * rng.normal(size=shape)).astype(dtype)
    gy = rng.normal(size=shape).astype(dtype)
    y, gx = _run(getattr(F, name), x, gy, axis=axis)
    tfn = getattr(torch.nn.functional, name)
    ty, tgx = _run_torch(torch, lambda t: tfn(t, dim=axis), x, gy)
    assert y.dtype == dtype and gx.dtype == dtype
    _close(y, ty, TOL[dtype])
    _close(gx, tgx, TOL[dtype])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", [((3, 0), -1), ((0, 4), -1), ((0, 4), 0)])
def test_softmax_family_empty_tensors_match_torch(torch, name, shape, axis):
    x = np.zeros(shape)
    y, gx = _run(getattr(F, name), x, np.zeros(shape), axis=axis)
    tfn = getattr(torch.nn.functional, name)
    ty, tgx = _run_torch(torch, lambda t: tfn(t, dim=axis), x, np.zeros(shape))
    assert y.shape == ty.shape == shape and gx.shape == tgx.shape == shape


# ------------------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_spread_is_finite_and_exact(dtype):
    x = cl.tensor(np.array([[1000.0, 0.0, -1000.0]], dtype=dtype), requires_grad=True)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.softmax(x)
        ly = F.log_softmax(x)
        y.backward(np.array([[1.0, 2.0, 3.0]], dtype=dtype))
    # e^-1000 and e^-2000 are far below the smallest subnormal: the exact answers round to these
    np.testing.assert_array_equal(y.numpy(), [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(ly.numpy(), [[0.0, -1000.0, -2000.0]])
    assert y.dtype == ly.dtype == dtype
    np.testing.assert_array_equal(x.grad, [[0.0, 0.0, 0.0]])  # y * (gy - <gy, y>) = y * (gy - 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_gradient_at_huge_spread(dtype):
    x = cl.tensor(np.array([1000.0, 0.0, -1000.0], dtype=dtype), requires_grad=True)
    with np.errstate(all="raise"):
        F.log_softmax(x).backward(np.array([1.0, 2.0, 3.0], dtype=dtype))
    # gy - softmax * sum(gy) = [1, 2, 3] - [1, 0, 0] * 6
    np.testing.assert_array_equal(x.grad, [-5.0, 2.0, 3.0])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_is_shift_invariant(name):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 6))
    fn = getattr(F, name)
    with np.errstate(all="raise"):
        near = fn(cl.tensor(x)).numpy()
        far = fn(cl.tensor(x + 1e4)).numpy()  # e^(x + 1e4) overflows a naive formula
    np.testing.assert_allclose(far, near, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_without_warnings(dtype):
    x = cl.tensor(np.array([-1000.0, 1000.0], dtype=dtype), requires_grad=True)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.sigmoid(x)
        y.backward(np.ones(2, dtype=dtype))
    np.testing.assert_array_equal(y.numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    assert y.dtype == dtype


def test_sigmoid_keeps_relative_precision_for_negative_inputs():
    """1 - sigmoid(-x) would lose everything; the stable form keeps e^x / (1 + e^x)."""
    xs = [-5.0, -30.0, -100.0, -700.0]
    y = F.sigmoid(cl.tensor(np.array(xs))).numpy()
    expected = [math.exp(v) / (1.0 + math.exp(v)) for v in xs]
    np.testing.assert_allclose(y, expected, rtol=1e-14)


def test_tanh_saturates_without_warnings():
    with np.errstate(all="raise"):
        y = F.tanh(cl.tensor(np.array([-1000.0, 1000.0]))).numpy()
    np.testing.assert_array_equal(y, [-1.0, 1.0])


# ------------------------------------------------------------------------- dtype, graph, misc
@pytest.mark.parametrize(
    "call",
    [
        lambda t: F.relu(t),
        lambda t: F.leaky_relu(t, slope=np.float64(0.2)),  # a float64 scalar must not upcast
        lambda t: F.sigmoid(t),
        lambda t: F.tanh(t),
        lambda t: F.softmax(t, axis=np.int64(0)),
        lambda t: F.log_softmax(t),
    ],
    ids=["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax"],
)
def test_float32_stays_float32(call):
    t = cl.tensor(
        np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), requires_grad=True
    )
    y = call(t)
    y.backward(np.ones((3, 4), dtype=np.float32))
    assert y.dtype == np.float32 and t.grad.dtype == np.float32


def test_no_grad_builds_no_graph():
    x = cl.tensor(np.ones((2, 3)), requires_grad=True)
    with cl.no_grad():
        for fn in (F.relu, F.leaky_relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax):
            assert not fn(x).requires_grad


def test_arrays_and_lists_are_accepted():
    y = F.relu([[1.0, -1.0]])
    assert isinstance(y, cl.Tensor)
    np.testing.assert_array_equal(y.numpy(), [[1.0, 0.0]])
    assert F.softmax(np.zeros((2, 3))).dtype == np.float64  # a float64 array stays float64
    assert F.sigmoid(np.zeros(3, dtype=np.float32)).dtype == np.float32


def test_activation_used_twice_accumulates_gradient():
    x = cl.tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    y = F.tanh(x)
    (y * y + y).sum().backward()
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(x.grad, (2 * t + 1) * (1 - t**2), rtol=1e-14)
