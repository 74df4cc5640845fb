"""Winograd F(4x4, 3x3) and F(4, 3) along rows beyond the common kernel tests: their float32
error against the exact (float64 loops) result, the filter transform in float64, the
weight-gradient transform as the exact adjoint of the filter transform, the smallest and odd
sizes, and what the 2-D kernel keeps."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import kernels
from cnnlab.kernels.winograd import filter_grad, filter_transform
from cnnlab.reference.conv import conv_backward, conv_forward
from tests.kernels.test_kernels import assert_rel, run


@pytest.mark.parametrize("name", ["winograd", "winograd_rows"])
@pytest.mark.parametrize("c_in,c_out,hw", [(16, 16, 32), (32, 32, 16), (64, 64, 8), (8, 24, 11)])
def test_float32_error_against_the_exact_result(name, c_in, c_out, hw):
    """ResNet-20's 3x3 layers in float32: Z and the three gradients within 1e-4 of max|exact|
    (the tolerance kernels/winograd.py states), and within 30x the window matrix's own float32
    error (the rounding of the transforms, not a wrong formula)."""
    rng = np.random.default_rng(c_in)
    x = rng.normal(size=(3, hw, hw, c_in))
    w = rng.normal(size=(3, 3, c_in, c_out)) / np.sqrt(9 * c_in)
    b = rng.normal(size=c_out)
    z, cache = conv_forward(x, w, b, 1, 1)
    gy = rng.normal(size=z.shape)
    exact = (z, *conv_backward(gy, cache))
    f32 = [a.astype(np.float32) for a in (x, w, b, gy)]
    _, *wino = run(name, *f32, padding=1)
    _, *window = run("window", *f32, padding=1)
    for got, ref, want, what in zip(wino, window, exact, ("Z", "dA", "dW", "db")):
        scale = np.abs(want).max()
        err, ref_err = np.abs(got - want).max() / scale, np.abs(ref - want).max() / scale
        assert err <= 1e-4, f"{what}: {err:.2e}"
        assert err <= 30 * max(ref_err, 1e-7), f"{what}: {err:.2e} against {ref_err:.2e}"


def test_filter_transform_is_computed_in_float64():
    """U = G g G^T rounded once to float32 (1/6, 1/12, 1/24 computed in float32 would round
    several times)."""
    w = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
    u = filter_transform(w)
    assert u.dtype == np.float32 and u.shape == (36, 16, 16)
    np.testing.assert_array_equal(u, filter_transform(w.astype(np.float64)).astype(np.float32))


def test_weight_gradient_transform_is_the_adjoint():
    """<U(w), dU> = <w, G^T dU G> for any w and dU: dW is the exact adjoint of the forward's
    filter transform."""
    rng = np.random.default_rng(1)
    w, du = rng.normal(size=(3, 3, 4, 5)), rng.normal(size=(36, 4, 5))
    lhs = float(np.sum(filter_transform(w) * du))
    rhs = float(np.sum(w * filter_grad(du, np.float64)))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


@pytest.mark.parametrize("name", ["winograd", "winograd_rows"])
@pytest.mark.parametrize("hw,padding", [((3, 3), 0), ((1, 1), 1), ((4, 7), 0), ((2, 13), 2),
                                        ((6, 6), (0, 1))])
def test_smallest_and_odd_sizes(name, hw, padding):
    """Outputs of 1x1, 2x5, ... : one partial tile, its extra outputs dropped."""
    rng = np.random.default_rng(hw[1])
    x, w, b = rng.normal(size=(2, *hw, 3)), rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    z, cache = conv_forward(x, w, b, 1, padding)
    gy = rng.normal(size=z.shape)
    taken, *got = run(name, x, w, b, gy, padding=padding)
    assert taken == name
    for g, want, what in zip(got, (z, *conv_backward(gy, cache)), ("Z", "dA", "dW", "db")):
        assert_rel(g, want, 1e-10, what)


def test_keeps_the_input_only_for_the_weight_gradient():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(1, 6, 6, 3)), rng.normal(size=(3, 3, 3, 3))
    with kernels.use("winograd"):
        y = F.conv2d(cl.tensor(x, requires_grad=True), cl.tensor(w), padding=1)
        assert y._ctx.kernel.name == "winograd" and y._ctx.kernel.x is None
        y = F.conv2d(cl.tensor(x), cl.tensor(w, requires_grad=True), padding=1)
        assert y._ctx.kernel.x is not None


@pytest.mark.parametrize("keep", [True, False])
def test_kept_or_recomputed_v_gives_the_loops_gradients(monkeypatch, keep):
    """dW from the V kept in forward (KEEP_V) or transformed again, chunks of two images."""
    from cnnlab.kernels import winograd

    monkeypatch.setattr(winograd, "KEEP_V", keep)
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(5, 7, 9, 4)), rng.normal(size=(3, 3, 4, 6)), rng.normal(size=6)
    z, cache = conv_forward(x, w, b, 1, 1)
    gy = rng.normal(size=z.shape)
    taken, *got = run("winograd", x, w, b, gy, 2, padding=1)
    assert taken == "winograd"
    for g, want, what in zip(got, (z, *conv_backward(gy, cache)), ("Z", "dA", "dW", "db")):
        assert_rel(g, want, 1e-10, what)
