"""Batch normalization: hand-computed numbers, a loop reference, PyTorch forward/backward and
running statistics, in-place updates and dtype rules. Gradient checks and pinned error messages
live in the registry (tests/ops/opinfo_normalization.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import functional as F

TOL = {np.float32: 1e-4, np.float64: 1e-9}


def assert_close(actual, expected, dtype):
    """Relative tolerance of the dtype, scaled by the size of the expected values."""
    expected = np.asarray(expected, dtype=np.float64)
    rtol = TOL[dtype]
    atol = rtol * max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol)


def _loop_reference(x, gamma, beta, eps):
    """Training-mode forward written with loops: every channel's values gathered one by one."""
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    y = np.empty_like(flat)
    for ch in range(c):
        values = [flat[i, ch] for i in range(flat.shape[0])]
        mu = sum(values) / len(values)
        var = sum((v - mu) ** 2 for v in values) / len(values)
        for i, v in enumerate(values):
            y[i, ch] = gamma[ch] * (v - mu) / np.sqrt(var + eps) + beta[ch]
    return y.reshape(x.shape)


# ------------------------------------------------------------------ hand-computed numbers
def test_two_values_by_hand():
    # one channel, values 1 and 3: mean 2, biased var 1, unbiased var 2
    x = cl.tensor(np.array([[1.0], [3.0]]), requires_grad=True)
    gamma = cl.tensor(np.array([2.0]), requires_grad=True)
    beta = cl.tensor(np.array([0.5]), requires_grad=True)
    rm, rv = np.zeros(1), np.ones(1)
    y = F.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.9, eps=1e-5)
    s = 1 / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(y.numpy(), [[0.5 - 2 * s], [0.5 + 2 * s]], rtol=1e-12)
    np.testing.assert_allclose(rm, [0.1 * 2.0], rtol=1e-12)  # 0.9 * 0 + 0.1 * mean
    np.testing.assert_allclose(rv, [0.9 * 1.0 + 0.1 * 2.0], rtol=1e-12)  # unbiased var 2
    y.backward(np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(beta.grad, [1.0])
    np.testing.assert_allclose(gamma.grad, [-s], rtol=1e-12)
    # with m = 2, x_hat = +-d/sqrt(d^2 + eps) moves only through eps: gx = gamma*eps/(2*(1+eps)^1.5)
    g = 2.0 * 1e-5 / (1 + 1e-5) ** 1.5 / 2
    np.testing.assert_allclose(x.grad, [[g], [-g]], rtol=1e-6)


def test_eval_uses_running_statistics_by_hand():
    x = cl.tensor(np.array([[1.0, 4.0], [3.0, 0.0]]), requires_grad=True)
    gamma = cl.tensor(np.array([1.0, 3.0]), requires_grad=True)
    beta = cl.tensor(np.array([0.0, 1.0]))
    rm, rv = np.array([1.0, 2.0]), np.array([4.0, 1.0])
    y = F.batch_norm(x, gamma, beta, rm, rv, training=False, eps=0.0 + 1e-12)
    np.testing.assert_allclose(y.numpy(), [[0.0, 7.0], [1.0, -5.0]], rtol=1e-9)
    np.testing.assert_array_equal(rm, [1.0, 2.0])  # nothing updated in eval
    np.testing.assert_array_equal(rv, [4.0, 1.0])
    y.backward(np.ones((2, 2)))
    np.testing.assert_allclose(x.grad, [[0.5, 3.0], [0.5, 3.0]], rtol=1e-9)  # gamma/sqrt(var)
    np.testing.assert_allclose(gamma.grad, [0.0 + 1.0, 2.0 - 2.0], rtol=1e-9, atol=1e-12)


def test_forward_matches_loop_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5, 2))
    gamma, beta = rng.uniform(0.5, 2, size=2), rng.normal(size=2)
    y = F.batch_norm(cl.tensor(x), cl.tensor(gamma), cl.tensor(beta), None, None, training=True)
    np.testing.assert_allclose(
        y.numpy(), _loop_reference(x, gamma, beta, 1e-5), rtol=1e-12, atol=1e-12
    )


# ------------------------------------------------------------------ PyTorch oracle
def _torch_bn(torch, x, gamma, beta, rm, rv, gy, training, momentum, eps):
    """Run torch's batch_norm on NHWC/NF data (NCHW inside); returns y, gx, ggamma, gbeta."""
    tx = torch.tensor(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x, requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)
    y = torch.nn.functional.batch_norm(
        tx, rm, rv, tg, tb, training=training, momentum=1 - momentum, eps=eps
    )
    gy_t = torch.tensor(gy.transpose(0, 3, 1, 2) if gy.ndim == 4 else gy)
    y.backward(gy_t)
    back = (lambda a: a.transpose(0, 2, 3, 1)) if x.ndim == 4 else (lambda a: a)
    return (back(y.detach().numpy()), back(tx.grad.numpy()), tg.grad.numpy(), tb.grad.numpy())


shapes = st.one_of(
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    st.tuples(st.integers(1, 6), st.integers(1, 5)),
)


@settings(max_examples=25, deadline=None)
@given(
    shape=shapes,
    training=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    momentum=st.sampled_from([0.9, 0.5, 0.0, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_torch(torch, shape, training, dtype, momentum, seed):
    m = int(np.prod(shape[:-1]))
    assume(m > 1 or not training)
    rng = np.random.default_rng(seed)
    c = shape[-1]
    gamma = rng.uniform(0.5, 1.5, size=c).astype(dtype)
    beta = rng.normal(size=c).astype(dtype)
    rm = rng.normal(size=c).astype(dtype)
    rv = rng.uniform(0.5, 2.0, size=c).astype(dtype)
    trm, trv = torch.tensor(rm.copy()), torch.tensor(rv.copy())
    eps = 1e-3
    for _ in range(3):  # several steps: the running statistics accumulate
        x = rng.normal(size=shape).astype(dtype)
        gy = rng.normal(size=shape).astype(dtype)
        tx, tg, tb = (cl.tensor(a, requires_grad=True) for a in (x, gamma, beta))
        y = F.batch_norm(tx, tg, tb, rm, rv, training=training, momentum=momentum, eps=eps)
        y.backward(gy)
        ref = _torch_bn(torch, x, gamma, beta, trm, trv, gy, training, momentum, eps)
        assert y.dtype == dtype and tx.grad.dtype == dtype and tg.grad.dtype == dtype
        for ours, theirs in zip((y.numpy(), tx.grad, tg.grad, tb.grad), ref):
            assert_close(ours, theirs, dtype)
        assert_close(rm, trm.numpy(), dtype)
        assert_close(rv, trv.numpy(), dtype)


def test_running_variance_is_unbiased_like_torch(torch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3, 4))
    rm, rv = np.zeros(4), np.ones(4)
    F.batch_norm(cl.tensor(x), None, None, rm, rv, training=True, momentum=0.0)
    # momentum 0: the running values ARE the batch statistics
    np.testing.assert_allclose(rm, x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(rv, x.var(axis=(0, 1, 2), ddof=1), rtol=1e-12)
    trm, trv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    torch.nn.functional.batch_norm(
        torch.tensor(x.transpose(0, 3, 1, 2)), trm, trv, training=True, momentum=1.0
    )
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)


# ------------------------------------------------------------------ state and dtype rules
def test_running_statistics_updated_in_place():
    rng = np.random.default_rng(1)
    x = cl.tensor(rng.normal(size=(8, 3)))
    rm, rv = np.zeros(3), np.ones(3)
    ids = id(rm), id(rv)
    F.batch_norm(x, None, None, rm, rv, training=True)
    assert (id(rm), id(rv)) == ids
    assert not np.array_equal(rm, np.zeros(3)) and not np.array_equal(rv, np.ones(3))


def test_running_statistics_as_tensors_update_their_data():
    x = cl.tensor(np.random.default_rng(2).normal(size=(4, 2, 2, 3)))
    rm, rv = cl.tensor(np.zeros(3)), cl.tensor(np.ones(3))
    before = rm.data
    F.batch_norm(x, None, None, rm, rv, training=True)
    assert rm.data is before
    np.testing.assert_allclose(rm.numpy(), 0.1 * x.numpy().mean(axis=(0, 1, 2)), rtol=1e-12)


def test_no_grad_still_updates_running_statistics():
    x = cl.tensor(np.random.default_rng(4).normal(size=(5, 2)))
    rm, rv = np.zeros(2), np.ones(2)
    with cl.no_grad():
        y = F.batch_norm(x, cl.tensor(np.ones(2), requires_grad=True), None, rm, rv, True)
    assert not y.requires_grad
    np.testing.assert_allclose(rm, 0.1 * x.numpy().mean(axis=0), rtol=1e-12)


def test_float32_with_float64_running_stats_stays_float32():
    rng = np.random.default_rng(5)
    x = cl.tensor(rng.normal(size=(4, 3, 3, 2)).astype(np.float32), requires_grad=True)
    g = cl.tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = cl.tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    rm, rv = np.zeros(2), np.ones(2)  # float64
    for training in (True, False):
        y = F.batch_norm(x, g, b, rm, rv, training=training)
        assert y.dtype == np.float32
        y.backward(np.ones(y.shape, dtype=np.float32))
        assert x.grad.dtype == g.grad.dtype == b.grad.dtype == np.float32
    assert rm.dtype == rv.dtype == np.float64


def test_plain_arrays_for_gamma_beta_follow_x_dtype():
    x = cl.tensor(np.array([[1, 1], [2, 2], [4, 5]], dtype=np.float32))
    y = F.batch_norm(x, np.ones(2), np.zeros(2), None, None, training=True)
    assert y.dtype == np.float32


def test_without_gamma_beta_equals_unit_gamma_zero_beta():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 2, 2, 4))
    gy = rng.normal(size=x.shape)
    a = cl.tensor(x, requires_grad=True)
    b = cl.tensor(x, requires_grad=True)
    F.batch_norm(a, None, None, None, None, True).backward(gy)
    F.batch_norm(b, cl.tensor(np.ones(4)), cl.tensor(np.zeros(4)), None, None, True).backward(gy)
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-15)


def test_non_contiguous_input(torch):
    rng = np.random.default_rng(7)
    nchw = rng.normal(size=(3, 4, 5, 5))
    x = nchw.transpose(0, 2, 3, 1)  # NHWC view, not contiguous
    gy = rng.normal(size=x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=4), rng.normal(size=4)
    tx = cl.tensor(x, requires_grad=True)
    y = F.batch_norm(tx, cl.tensor(gamma), cl.tensor(beta), None, None, True)
    y.backward(gy)
    ref = _torch_bn(torch, x, gamma, beta, None, None, gy, True, 0.9, 1e-5)
    assert_close(y.numpy(), ref[0], np.float64)
    assert_close(tx.grad, ref[1], np.float64)


def test_one_example_allowed_in_eval_not_in_training():
    x = cl.tensor(np.array([[1.0, 2.0]]))
    y = F.batch_norm(x, None, None, np.zeros(2), np.ones(2), training=False, eps=1e-12)
    np.testing.assert_allclose(y.numpy(), [[1.0, 2.0]], rtol=1e-9)
    with pytest.raises(ValueError, match="batch_norm: training needs more than one value"):
        F.batch_norm(x, None, None, np.zeros(2), np.ones(2), training=True)


# ------------------------------------------------------------------ eval_affine (the fold)
def _bn_op(training, rm, rv, eps):
    from cnnlab.ops.normalization import BatchNorm

    return BatchNorm(training, rm, rv, 0.9, eps)


def test_eval_affine_by_hand():
    # channel 0: s = 2 / sqrt(4) = 1, t = 3 - 1 * 1 = 2; channel 1: s = 1 / sqrt(0.25) = 2,
    # t = 0 - 2 * (-1) = 2 (gamma 1, beta 0 where None)
    bn = _bn_op(False, np.array([1.0, -1.0]), np.array([4.0, 0.25]), 0.0)
    s, t = bn.eval_affine(np.array([2.0, 1.0]), np.array([3.0, 0.0]))
    np.testing.assert_array_equal(s, [1.0, 2.0])
    np.testing.assert_array_equal(t, [2.0, 2.0])
    s, t = bn.eval_affine()  # no affine part: gamma = 1, beta = 0
    np.testing.assert_array_equal(s, [0.5, 2.0])
    np.testing.assert_array_equal(t, [-0.5, 2.0])


@settings(max_examples=30, deadline=None)
@given(
    c=st.integers(1, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
    affine=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_eval_affine_is_the_eval_forward_by_hand(c, dtype, affine, eps, seed):
    """s * x + t equals gamma * (x - mean) / sqrt(var + eps) + beta, computed here in float64
    from the statistics and parameters as stored (in their dtype), channel by channel."""
    rng = np.random.default_rng(seed)
    rm = rng.normal(size=c).astype(dtype)
    rv = rng.uniform(0.1, 3.0, size=c).astype(dtype)
    gamma = rng.uniform(-2.0, 2.0, size=c).astype(dtype) if affine else None
    beta = rng.normal(size=c).astype(dtype) if affine else None
    x = rng.normal(size=(3, 2, 4, c))  # float64
    s, t = _bn_op(False, rm, rv, eps).eval_affine(gamma, beta)
    assert s.dtype == t.dtype == np.float64 and s.shape == t.shape == (c,)
    expected = np.empty_like(x)
    for ch in range(c):
        g = 1.0 if gamma is None else float(gamma[ch])
        b = 0.0 if beta is None else float(beta[ch])
        inv = 1.0 / np.sqrt(float(rv[ch]) + eps)
        expected[..., ch] = g * (x[..., ch] - float(rm[ch])) * inv + b
    np.testing.assert_allclose(s * x + t, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (6, 3)])
def test_eval_affine_matches_torch_eval_batch_norm(torch, shape):
    rng = np.random.default_rng(7)
    c = shape[-1]
    x = rng.normal(size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=c), rng.normal(size=c)
    rm, rv = rng.normal(size=c), rng.uniform(0.5, 2.0, size=c)
    s, t = _bn_op(False, rm, rv, 1e-3).eval_affine(gamma, beta)
    y, *_ = _torch_bn(torch, x, gamma, beta, torch.tensor(rm), torch.tensor(rv),
                      np.zeros(shape), False, 0.9, 1e-3)
    np.testing.assert_allclose(s * x + t, y, rtol=1e-12, atol=1e-12)


def test_eval_affine_is_none_in_training_or_without_running_statistics():
    rm, rv = np.zeros(3), np.ones(3)
    assert _bn_op(True, rm, rv, 1e-5).eval_affine(np.ones(3), np.zeros(3)) is None
    assert _bn_op(True, None, None, 1e-5).eval_affine() is None
    assert _bn_op(False, None, None, 1e-5).eval_affine() is None
