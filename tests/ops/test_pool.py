"""Pooling ops: against the nested-loop reference, hand-computed values, and PyTorch.

The float64 gradient checks, float32-stays-float32 and the pinned error messages run from the
registry (tests/ops/opinfo_pool.py, via tests/test_opinfo.py).
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
import cnnlab.ops.pool as pool_module
from cnnlab import functional as F
from cnnlab.reference.pool import pool_backward, pool_forward

TOL = {np.float32: 1e-4, np.float64: 1e-9}
DTYPES = [np.float32, np.float64]
OPS = {"max": F.max_pool2d, "average": F.avg_pool2d}


def _distinct(rng, shape, dtype=np.float64):
    """Shuffled values, all different and well apart: no window has a tied maximum."""
    n = int(np.prod(shape))
    return ((rng.permutation(n).reshape(shape) - n / 2) / n).astype(dtype)


def _run(fn, x, gy, *args, **kw):
    """y and gx = d<gy, y>/dx from cnnlab."""
    t = cl.tensor(x, requires_grad=True)
    y = fn(t, *args, **kw)
    y.backward(gy)
    return y.numpy(), t.grad


def _close(actual, expected, tol):
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


# ----------------------------------------------------------------- the nested-loop reference
@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 6, 6, 2)], ids=["batch1-odd", "batch2"])
@pytest.mark.parametrize("padding", [0, 1, "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("mode", ["max", "average"])
def test_matches_reference(mode, size, stride, padding, shape):
    rng = np.random.default_rng(size * 100 + stride * 10 + len(str(padding)))
    x = _distinct(rng, shape)
    A, cache = pool_forward(x, size, stride, mode=mode, padding=padding)
    gy = rng.normal(size=A.shape)
    dA_prev = pool_backward(gy, cache)

    y, gx = _run(OPS[mode], x, gy, size, stride=stride, padding=padding)
    assert y.shape == A.shape
    np.testing.assert_allclose(y, A, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, dA_prev, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("threads", [1, 3], indirect=True)
@pytest.mark.parametrize("size,stride,padding", [(2, 2, 0), (2, 2, 1), (3, 2, "same"), (3, 1, 0)])
def test_max_backward_in_batch_chunks_matches_reference(monkeypatch, threads, size, stride,
                                                        padding):
    """Max pooling's backward walks the batch in chunks of one image, on 1 or 3 threads:
    distinct values against the loops; unpadded all-equal values (every window tied) send each
    window's gradient to its first cell, its top-left."""
    shape = (5, 8, 7, 3)
    per_image = int(np.prod(shape[1:])) * 8
    monkeypatch.setattr(pool_module, "_CHUNK_BYTES", per_image + 1)  # a chunk an image
    rng = np.random.default_rng(size * 10 + stride)
    x = _distinct(rng, shape)
    A, cache = pool_forward(x, size, stride, mode="max", padding=padding)
    gy = rng.normal(size=A.shape)
    _, gx = _run(F.max_pool2d, x, gy, size, stride=stride, padding=padding)
    np.testing.assert_allclose(gx, pool_backward(gy, cache), rtol=1e-12, atol=1e-14)

    if padding == 0:  # every window tied: its gradient goes to its first cell, the top-left
        _, gx_tied = _run(F.max_pool2d, np.zeros(shape), gy, size, stride=stride)
        expected = np.zeros(shape)
        for i in range(A.shape[1]):
            for j in range(A.shape[2]):
                expected[:, i * stride, j * stride] += gy[:, i, j]
        np.testing.assert_allclose(gx_tied, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("size,stride,padding", [(2, 2, 0), (3, 1, 1), (3, 2, "same")])
def test_float32_matches_reference(mode, size, stride, padding):
    rng = np.random.default_rng(7)
    x = _distinct(rng, (2, 7, 6, 3))
    A, cache = pool_forward(x, size, stride, mode=mode, padding=padding)
    gy = rng.normal(size=A.shape)
    y, gx = _run(OPS[mode], x.astype(np.float32), gy.astype(np.float32), size, stride, padding)
    assert y.dtype == np.float32 and gx.dtype == np.float32
    np.testing.assert_allclose(y, A, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx, pool_backward(gy, cache), rtol=1e-5, atol=1e-6)


def test_non_contiguous_input_matches_reference():
    rng = np.random.default_rng(3)
    base = _distinct(rng, (3, 7, 6, 2))
    x = base.transpose(0, 2, 1, 3)[:, ::-1]  # (3, 6, 7, 2), a strided view
    for mode, fn in OPS.items():
        A, cache = pool_forward(x, 3, 2, mode=mode, padding=1)
        gy = rng.normal(size=A.shape)
        y, gx = _run(fn, x, gy, 3, 2, 1)
        np.testing.assert_allclose(y, A, rtol=1e-12)
        np.testing.assert_allclose(gx, pool_backward(gy, cache), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", [1, 2, 3, 2.5])
@pytest.mark.parametrize("size,stride", [(2, 2), (3, 1), (2, 3)])
def test_lp_matches_reference_average(p, size, stride):
    """(sum of x**p over the window) ** (1/p) = (size**2 * mean of x**p) ** (1/p)."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0.1, 2.0, size=(2, 7, 6, 3))
    A, _ = pool_forward(x**p, size, stride, mode="average")
    with cl.no_grad():
        y = F.lp_pool2d(cl.tensor(x), p, size, stride).numpy()
    np.testing.assert_allclose(y, (size * size * A) ** (1 / p), rtol=1e-12)


# ----------------------------------------------------------------------- hand-computed values
def test_max_and_average_hand_values():
    x = np.array([[1.0, 2, 5, 6], [3, 4, 7, 8], [-1, -2, 0, 9], [-3, -4, 1, 2]])[None, :, :, None]
    gy = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    y, gx = _run(F.max_pool2d, x, gy, 2)
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 8], [-1, 9]])
    np.testing.assert_array_equal(
        gx[0, :, :, 0], [[0, 0, 0, 0], [0, 1, 0, 2], [3, 0, 0, 4], [0, 0, 0, 0]]
    )
    y, gx = _run(F.avg_pool2d, x, gy, 2)
    np.testing.assert_array_equal(y[0, :, :, 0], [[2.5, 6.5], [-2.5, 3.0]])
    np.testing.assert_array_equal(gx[0, :, :, 0], np.kron([[1, 2], [3, 4]], np.ones((2, 2))) / 4)


def test_average_does_not_count_padding():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # [[1 2 3] [4 5 6] [7 8 9]]
    y, gx = _run(F.avg_pool2d, x, np.ones((1, 3, 3, 1)), 3, stride=1, padding=1)
    # corner windows hold 4 real cells, edge windows 6, the centre 9
    expected = [
        [(1 + 2 + 4 + 5) / 4, (1 + 2 + 3 + 4 + 5 + 6) / 6, (2 + 3 + 5 + 6) / 4],
        [(1 + 2 + 4 + 5 + 7 + 8) / 6, 5.0, (2 + 3 + 5 + 6 + 8 + 9) / 6],
        [(4 + 5 + 7 + 8) / 4, (4 + 5 + 6 + 7 + 8 + 9) / 6, (5 + 6 + 8 + 9) / 4],
    ]
    np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-15)
    # the corner cell is in 4 windows: a corner (1/4), two edges (1/6 each) and the centre (1/9)
    np.testing.assert_allclose(gx[0, 0, 0, 0], 1 / 4 + 2 / 6 + 1 / 9, rtol=1e-15)


def test_same_padding_is_asymmetric_like_tensorflow():
    """H = 5, size 2, stride 2: 'same' gives 3 rows and pads one row at the bottom only."""
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    y = F.avg_pool2d(cl.tensor(x), 2, padding="same").numpy()[0, :, :, 0]
    assert y.shape == (3, 3)
    assert y[0, 0] == (0 + 1 + 5 + 6) / 4
    assert y[2, 2] == 24.0  # the bottom-right window holds one real cell
    assert y[2, 0] == (20 + 21) / 2


@pytest.mark.parametrize("size,stride,padding", [(3, 1, 1), (2, 2, 1), (3, 2, "same"), (2, 1, 1)])
def test_padded_cells_never_win_a_max(size, stride, padding):
    rng = np.random.default_rng(5)
    x = -1.0 - rng.uniform(size=(2, 5, 4, 3))  # all in [-2, -1): a 0 or -inf pad would show
    gy = rng.normal(size=F.max_pool2d(cl.tensor(x), size, stride, padding).shape)
    y, gx = _run(F.max_pool2d, x, gy, size, stride, padding)
    A, cache = pool_forward(x, size, stride, mode="max", padding=padding)
    np.testing.assert_array_equal(y, A)
    assert np.all((y >= -2.0) & (y < -1.0))
    # every window's gradient lands on one real cell: nothing is lost in the padding
    np.testing.assert_allclose(gx.sum(axis=(1, 2)), gy.sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(gx, pool_backward(gy, cache), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_ties_go_to_the_first_max(dtype):
    """All-zero windows (common after a ReLU): the first cell of each window gets gy."""
    gy = np.arange(1.0, 10.0).reshape(1, 3, 3, 1).astype(dtype)
    _, gx = _run(F.max_pool2d, np.zeros((1, 4, 4, 1), dtype), gy, 2, stride=1)
    expected = np.zeros((4, 4))
    expected[:3, :3] = gy[0, :, :, 0]  # window (i, j) starts at cell (i, j)
    np.testing.assert_array_equal(gx[0, :, :, 0], expected)

    gy = np.array([[1.0, 2.0]]).reshape(1, 1, 2, 1).astype(dtype)
    x = np.array([[0.0, 1, 1, 0], [1, 0, 1, 1]]).reshape(1, 2, 4, 1).astype(dtype)
    _, gx = _run(F.max_pool2d, x, gy, 2)  # the tiled fast path
    np.testing.assert_array_equal(gx[0, :, :, 0], [[0, 1, 2, 0], [0, 0, 0, 0]])


def test_max_propagates_nan():
    x = np.array([[1.0, np.nan, 2.0, 3.0], [0.0, 4.0, 5.0, 6.0]]).reshape(1, 2, 4, 1)
    y = F.max_pool2d(cl.tensor(x), 2).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 0] == 6.0


def test_lp_hand_values_and_zero_window():
    x = np.array([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 4, 1)
    y, gx = _run(F.lp_pool2d, x, np.ones((1, 1, 2, 1)), 2, 2)
    np.testing.assert_allclose(y[0, 0, :, 0], [5.0, 0.0])
    # d sqrt(sum x^2) / dx = x / y; the all-zero window gets 0, not NaN
    np.testing.assert_allclose(gx[0, :, :, 0], [[0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    y, gx = _run(F.lp_pool2d, x, np.ones((1, 1, 2, 1)), 1, 2)  # p = 1: the window sum
    np.testing.assert_allclose(y[0, 0, :, 0], [7.0, 0.0])
    np.testing.assert_array_equal(gx, np.ones_like(x))


def test_global_avg_pool_hand_values():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    gy = np.array([[1.0, 2.0], [3.0, 4.0]])
    y, gx = _run(F.global_avg_pool2d, x, gy)
    np.testing.assert_allclose(y, [[5.0, 6.0], [17.0, 18.0]])
    np.testing.assert_allclose(gx, np.broadcast_to(gy[:, None, None, :] / 6, x.shape))


@pytest.mark.parametrize(
    "fn,args",
    [
        (F.max_pool2d, (2,)),
        (F.avg_pool2d, (3, 1, 1)),
        (F.lp_pool2d, (2, 2)),
        (F.global_avg_pool2d, ()),
    ],
)
def test_no_grad_builds_no_graph(fn, args):
    x = cl.tensor(np.ones((1, 4, 4, 2), np.float32), requires_grad=True)
    with cl.no_grad():
        y = fn(x, *args)
    assert not y.requires_grad and y.dtype == np.float32


def test_docstring_examples():
    assert doctest.testmod(pool_module).failed == 0


# ------------------------------------------------------------------------------ PyTorch oracle
@st.composite
def _configs(draw, padding=True):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph = draw(st.integers(0, kh // 2)) if padding else 0
    pw = draw(st.integers(0, kw // 2)) if padding else 0
    return {
        "n": draw(st.integers(1, 3)),
        "h": draw(st.integers(max(1, kh - 2 * ph), 9)),
        "w": draw(st.integers(max(1, kw - 2 * pw), 9)),
        "c": draw(st.integers(1, 4)),
        "size": (kh, kw),
        "stride": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "padding": (ph, pw),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _torch_run(torch, fn, x, gy):
    """y and gx from PyTorch, in NHWC: x (N, H, W, C) goes in as (N, C, H, W)."""
    t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    y = fn(t)
    images = gy.ndim == 4  # pooled images, or (N, C) from the global pool
    y.backward(torch.from_numpy((gy.transpose(0, 3, 1, 2) if images else gy).copy()))
    y = y.detach().numpy()
    return (y.transpose(0, 2, 3, 1) if images else y), t.grad.numpy().transpose(0, 2, 3, 1)


def _compare(torch, ours, theirs, x, cfg, dtype):
    with cl.no_grad():
        y = ours(cl.tensor(x))
    gy = np.random.default_rng(cfg["seed"] + 1).normal(size=y.shape).astype(dtype)
    y, gx = _run(ours, x, gy)
    y_t, gx_t = _torch_run(torch, theirs, x, gy)
    assert y.dtype == dtype and gx.dtype == dtype
    _close(y, y_t, TOL[dtype])
    _close(gx, gx_t, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(cfg=_configs())
def test_max_pool2d_matches_torch(torch, dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = _distinct(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]), dtype)
    k, s, p = cfg["size"], cfg["stride"], cfg["padding"]
    _compare(
        torch,
        lambda t: F.max_pool2d(t, k, s, p),
        lambda t: torch.nn.functional.max_pool2d(t, k, s, p),
        x,
        cfg,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(cfg=_configs())
def test_avg_pool2d_matches_torch(torch, dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(dtype)
    k, s, p = cfg["size"], cfg["stride"], cfg["padding"]
    _compare(
        torch,
        lambda t: F.avg_pool2d(t, k, s, p),
        lambda t: torch.nn.functional.avg_pool2d(t, k, s, p, count_include_pad=False),
        x,
        cfg,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(cfg=_configs(padding=False), p=st.sampled_from([1, 1.5, 2, 3]))
def test_lp_pool2d_matches_torch(torch, dtype, cfg, p):
    """Positive inputs: torch's lp_pool2d takes sign(.) * relu(|.|) of the power sum."""
    rng = np.random.default_rng(cfg["seed"])
    x = rng.uniform(0.2, 2.0, size=(cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(dtype)
    k, s = cfg["size"], cfg["stride"]
    _compare(
        torch,
        lambda t: F.lp_pool2d(t, p, k, s),
        lambda t: torch.nn.functional.lp_pool2d(t, p, k, s),
        x,
        cfg,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(cfg=_configs(padding=False))
def test_l2_pool2d_signed_inputs_matches_torch(torch, dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(dtype)
    k, s = cfg["size"], cfg["stride"]
    _compare(
        torch,
        lambda t: F.lp_pool2d(t, 2, k, s),
        lambda t: torch.nn.functional.lp_pool2d(t, 2, k, s),
        x,
        cfg,
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(cfg=_configs(padding=False))
def test_global_avg_pool2d_matches_torch(torch, dtype, cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(dtype)
    _compare(
        torch,
        F.global_avg_pool2d,
        lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1).flatten(1),
        x,
        cfg,
        dtype,
    )
