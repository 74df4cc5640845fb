"""The nested-loop convolution reference (cnnlab.reference.conv) against hand-computed numbers,
the course notes' published values and numpy central differences."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.reference.conv import conv_backward, conv_forward, conv_single_step, zero_pad

# x[0, i, j, 0] = 4 i + j and the 2x2 filter [[1, 2], [3, 4]]: by hand, the valid output is
# Z[i, j] = (4i + j) + 2 (4i + j + 1) + 3 (4i + 4 + j) + 4 (4i + 4 + j + 1) = 40 i + 10 j + 34.
X4 = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
W2 = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(2, 2, 1, 1)


def test_hand_computed_valid():
    Z, _ = conv_forward(X4, W2)
    want = np.array([[34, 44, 54], [74, 84, 94], [114, 124, 134]], dtype=np.float64)
    assert Z.shape == (1, 3, 3, 1)
    np.testing.assert_array_equal(Z[0, :, :, 0], want)


def test_hand_computed_bias_and_stride():
    Z, _ = conv_forward(X4, W2, np.array([0.5]), stride=2)
    np.testing.assert_array_equal(Z[0, :, :, 0], [[34.5, 54.5], [114.5, 134.5]])


def test_hand_computed_padding():
    Z, _ = conv_forward(X4, W2, pad=1)
    assert Z.shape == (1, 5, 5, 1)
    z = Z[0, :, :, 0]
    assert z[0, 0] == 4 * 0  # only W[1, 1] meets x[0, 0]
    assert z[0, 1] == 3 * 0 + 4 * 1
    assert z[4, 0] == 2 * 12  # only W[0, 1] meets x[3, 0]
    assert z[4, 4] == 1 * 15
    np.testing.assert_array_equal(z[1:4, 1:4], [[34, 44, 54], [74, 84, 94], [114, 124, 134]])


def test_hand_computed_dilation():
    # taps two apart: Z[i, j] = x[i, j] + 2 x[i, j+2] + 3 x[i+2, j] + 4 x[i+2, j+2] = 40i+10j+68
    Z, _ = conv_forward(X4, W2, dilation=2)
    np.testing.assert_array_equal(Z[0, :, :, 0], [[68, 78], [108, 118]])


def test_hand_computed_groups():
    # groups=2 with a 1x1 kernel: each output channel sees only its own input channel
    x = np.arange(8, dtype=np.float64).reshape(1, 2, 2, 2)
    w = np.array([3.0, -1.0]).reshape(1, 1, 1, 2)
    Z, _ = conv_forward(x, w, groups=2)
    np.testing.assert_array_equal(Z[0, :, :, 0], 3 * x[0, :, :, 0])
    np.testing.assert_array_equal(Z[0, :, :, 1], -x[0, :, :, 1])


def test_hand_computed_backward():
    _, cache = conv_forward(X4, W2, np.array([0.0]))
    dA, dW, db = conv_backward(np.ones((1, 3, 3, 1)), cache)
    # db: nine outputs; dW[u, v]: the sum of x over the 3x3 block the tap (u, v) visits
    np.testing.assert_array_equal(db, [9.0])
    np.testing.assert_array_equal(dW[:, :, 0, 0], [[45, 54], [81, 90]])
    # dA[i, j]: the sum of the filter taps that visit (i, j)
    np.testing.assert_array_equal(
        dA[0, :, :, 0], [[1, 3, 3, 2], [4, 10, 10, 6], [4, 10, 10, 6], [3, 7, 7, 4]]
    )


# ----------------------------------------------------------------------------- course numbers
def test_course_conv_single_step():
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    W = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    assert conv_single_step(a_slice_prev, W, b.item()) == pytest.approx(-6.99908945068, abs=1e-10)


def test_course_conv_forward_and_backward():
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache = conv_forward(A_prev, W, b.reshape(8), stride=2, pad=2)
    assert Z.shape == (10, 4, 4, 8)
    assert Z.mean() == pytest.approx(0.0489952035289, abs=1e-12)
    np.testing.assert_allclose(
        Z[3, 2, 1],
        [
            -0.61490741,
            -6.7439236,
            -2.55153897,
            1.75698377,
            3.56208902,
            0.53036437,
            5.18531798,
            8.75898442,
        ],
        atol=1e-8,
    )
    dA, dW, db = conv_backward(Z, cache)
    assert dA.shape == A_prev.shape and dW.shape == W.shape and db.shape == (8,)
    assert dA.mean() == pytest.approx(1.45243777754, abs=1e-10)
    assert dW.mean() == pytest.approx(1.72699145831, abs=1e-10)
    assert db.mean() == pytest.approx(7.83923256462, abs=1e-10)


def test_course_conv_forward_second_example():
    np.random.seed(1)
    A_prev = np.random.randn(10, 5, 7, 4)
    W = np.random.randn(3, 3, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, _ = conv_forward(A_prev, W, b.reshape(8), stride=2, pad=1)
    assert Z.shape == (10, 3, 4, 8)
    assert Z.mean() == pytest.approx(0.692360880758, abs=1e-11)


def test_zero_pad():
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2))
    x_pad = zero_pad(x, ((2, 2), (1, 3)))
    assert x_pad.shape == (4, 7, 7, 2)
    np.testing.assert_array_equal(x_pad[:, 2:5, 1:4], x)
    assert np.count_nonzero(x_pad) == np.count_nonzero(x)


# ----------------------------------------------------------------------------- shape rules
def _positions(n, k, s, before, after, d):
    span = d * (k - 1) + 1
    return len(range(0, n + before + after - span + 1, s))


@pytest.mark.parametrize(
    "hw,k,stride,pad,dilation,groups",
    [
        ((5, 7), (3, 3), 2, 1, 1, 1),
        ((6, 5), (2, 3), (2, 1), (1, 2), 1, 1),
        ((7, 7), (3, 2), 3, 0, (2, 1), 2),
        ((4, 6), (1, 1), 2, 0, 1, 4),
        ((5, 5), (5, 5), 1, 0, 1, 1),
    ],
)
def test_output_shape(hw, k, stride, pad, dilation, groups):
    h, w = hw
    s = stride if isinstance(stride, tuple) else (stride, stride)
    p = pad if isinstance(pad, tuple) else (pad, pad)
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    c_in, c_out = 4, 4
    rng = np.random.default_rng(0)
    A = rng.normal(size=(2, h, w, c_in))
    W = rng.normal(size=(*k, c_in // groups, c_out))
    Z, _ = conv_forward(A, W, None, stride, pad, dilation, groups)
    assert Z.shape == (
        2,
        _positions(h, k[0], s[0], p[0], p[0], d[0]),
        _positions(w, k[1], s[1], p[1], p[1], d[1]),
        c_out,
    )


# ----------------------------------------------------------------------------- finite differences
def _numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar function f at x (x is modified in place, restored)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = f()
        flat[i] = orig - eps
        minus = f()
        flat[i] = orig
        gflat[i] = (plus - minus) / (2 * eps)
    return g


def _rel(a, b):
    return np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))


@pytest.mark.parametrize(
    "x_shape,w_shape,kw",
    [
        ((2, 4, 4, 2), (2, 2, 2, 2), {}),
        ((1, 5, 5, 2), (3, 3, 2, 2), {"stride": 2, "pad": 1}),
        ((1, 5, 4, 2), (2, 3, 2, 2), {"stride": (2, 1), "pad": (1, 2)}),
        ((1, 5, 5, 1), (2, 2, 1, 2), {"stride": 2, "pad": "same"}),
        ((1, 5, 5, 2), (2, 2, 2, 1), {"dilation": 2, "pad": "full"}),
        ((1, 4, 4, 4), (3, 3, 2, 2), {"groups": 2, "pad": 1}),
        ((1, 5, 5, 2), (3, 3, 1, 4), {"groups": 2, "stride": 3}),
    ],
)
def test_backward_matches_finite_differences(x_shape, w_shape, kw):
    rng = np.random.default_rng(3)
    A = rng.normal(size=x_shape)
    W = rng.normal(size=w_shape)
    b = rng.normal(size=w_shape[-1])
    Z, cache = conv_forward(A, W, b, **kw)
    V = rng.normal(size=Z.shape)  # a random cotangent: the loss is sum(V * Z)

    def loss():
        return float(np.sum(V * conv_forward(A, W, b, **kw)[0]))

    dA, dW, db = conv_backward(V, cache)
    assert _rel(dA, _numeric_grad(loss, A)) < 1e-8
    assert _rel(dW, _numeric_grad(loss, W)) < 1e-8
    assert _rel(db, _numeric_grad(loss, b)) < 1e-8
