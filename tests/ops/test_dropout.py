"""Inverted dropout: seeding, the statistics of the mask, evaluation mode, the exact gradient.

The statistical tests use a fixed seed (so they are deterministic) and a tolerance of five
binomial standard deviations computed from n and keep_prob, not a hand-tuned number. The
float64 gradient check and the pinned error messages also run from the registry
(tests/ops/opinfo_activation.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cnnlab as cl
from cnnlab import functional as F

DTYPES = [np.float32, np.float64]
N_BIG = 1_000_000
SIGMAS = 5.0  # a correct implementation fails a 5-sigma check with probability < 1e-6


def _no_zeros(rng, shape, dtype=np.float64):
    """Values in +-[0.5, 1.5]: y == 0 exactly where a unit was dropped."""
    mag = rng.uniform(0.5, 1.5, size=shape)
    return (mag * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)


# ------------------------------------------------------------------------- seeding
def test_same_seed_same_mask_and_different_seed_different_mask():
    x = cl.tensor(np.ones((50, 40)))
    a = F.dropout(x, 0.5, rng=3).numpy()
    b = F.dropout(x, 0.5, rng=3).numpy()
    c = F.dropout(x, 0.5, rng=4).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a != 0, c != 0)


def test_generators_with_the_same_seed_agree_and_advance():
    x = cl.tensor(np.ones((50, 40)))
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    first = F.dropout(x, 0.3, rng=g1).numpy()
    np.testing.assert_array_equal(first, F.dropout(x, 0.3, rng=g2).numpy())
    second = F.dropout(x, 0.3, rng=g1).numpy()  # the generator moved on: a new mask
    assert not np.array_equal(first != 0, second != 0)
    # an int seed means a fresh generator seeded with it
    np.testing.assert_array_equal(first, F.dropout(x, 0.3, rng=9).numpy())
    np.testing.assert_array_equal(first, F.dropout(x, 0.3, rng=np.int64(9)).numpy())


def test_no_rng_gives_a_fresh_mask_each_call():
    x = cl.tensor(np.ones(1000))
    a, b = F.dropout(x, 0.5).numpy(), F.dropout(x, 0.5).numpy()
    assert not np.array_equal(a, b)  # equal with probability 2**-1000


def test_the_mask_does_not_depend_on_the_dtype():
    x = _no_zeros(np.random.default_rng(0), (30, 20))
    y64 = F.dropout(cl.tensor(x), 0.4, rng=5).numpy()
    y32 = F.dropout(cl.tensor(x.astype(np.float32)), 0.4, rng=5).numpy()
    np.testing.assert_array_equal(y64 != 0, y32 != 0)


# ------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_fraction_kept_is_keep_prob(rate):
    keep_prob = 1.0 - rate
    y = F.dropout(cl.tensor(np.ones(N_BIG, dtype=np.float32)), rate, rng=2024).numpy()
    kept = np.count_nonzero(y) / N_BIG
    std = math.sqrt(keep_prob * (1.0 - keep_prob) / N_BIG)  # of a binomial proportion
    assert abs(kept - keep_prob) < SIGMAS * std, (kept, keep_prob, std)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_mean_is_preserved(rate):
    """E[y] = x: mean(y) - mean(x) = (1/n) sum x_i (D_i / p - 1), with variance
    (1/n^2) sum x_i^2 (1 - p) / p for independent D_i ~ Bernoulli(p)."""
    keep_prob = 1.0 - rate
    x = np.random.default_rng(1).uniform(0.5, 1.5, size=(1000, 1000))
    y = F.dropout(cl.tensor(x), rate, rng=77).numpy()
    std = math.sqrt((1.0 - keep_prob) / keep_prob * np.sum(x * x)) / x.size
    assert abs(y.mean() - x.mean()) < SIGMAS * std, (y.mean(), x.mean(), std)


def test_mask_is_spread_evenly():
    """The kept fraction of every row of a 100 x 10_000 array is binomial around keep_prob: no
    row or block of the array is favoured."""
    keep_prob = 0.6
    y = F.dropout(cl.tensor(np.ones((100, 10_000), dtype=np.float32)), 0.4, rng=11).numpy()
    per_row = np.count_nonzero(y, axis=1) / y.shape[1]
    per_col_block = np.count_nonzero(y.reshape(100, 100, 100), axis=(0, 2)) / 10_000
    std = math.sqrt(keep_prob * (1 - keep_prob) / 10_000)
    # 100 proportions each: allow 5 sigma for the worst of them (Bonferroni: still < 1e-4)
    assert np.abs(per_row - keep_prob).max() < SIGMAS * std
    assert np.abs(per_col_block - keep_prob).max() < SIGMAS * std


# ------------------------------------------------------------------------- forward and gradient
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.75])
def test_gradient_is_mask_over_keep_prob_exactly(dtype, rate):
    keep_prob = 1.0 - rate
    x = cl.tensor(_no_zeros(np.random.default_rng(4), (40, 30), dtype), requires_grad=True)
    y = F.dropout(x, rate, rng=8)
    y.backward(np.ones(x.shape, dtype=dtype))
    d = y.numpy() != 0  # D, read back from y (x has no zeros)
    # D / keep_prob in x's dtype: 1 / keep_prob where kept, 0 where dropped
    expected = np.where(d, dtype(1.0) / dtype(keep_prob), dtype(0.0))
    assert x.grad.dtype == dtype and y.dtype == dtype
    np.testing.assert_array_equal(x.grad, expected)
    # forward: y = x * D / keep_prob (to rounding: the order of the product may differ)
    np.testing.assert_allclose(
        y.numpy(), x.numpy() * d / keep_prob, rtol=4 * np.finfo(dtype).eps, atol=0
    )


def test_gradient_with_a_random_upstream_gradient():
    rng = np.random.default_rng(5)
    x = cl.tensor(_no_zeros(rng, (6, 4, 4, 3)), requires_grad=True)
    gy = rng.normal(size=x.shape)
    y = F.dropout(x, 0.3, rng=21)
    y.backward(gy)
    np.testing.assert_allclose(x.grad, gy * (y.numpy() != 0) / 0.7, rtol=1e-15, atol=0)


@settings(max_examples=25, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6),
    dtype=st.sampled_from(DTYPES),
    rate=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_unit_is_dropped_or_scaled(shape, dtype, rate, seed):
    rng = np.random.default_rng(seed)
    x = cl.tensor(_no_zeros(rng, shape, dtype), requires_grad=True)
    gy = rng.normal(size=shape).astype(dtype)
    y = F.dropout(x, rate, rng=seed)
    y.backward(gy)
    assert y.dtype == dtype and x.grad.dtype == dtype and y.shape == shape
    kept = y.numpy() != 0
    scale = 1.0 / (1.0 - rate)
    tol = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(y.numpy(), np.where(kept, x.numpy() * scale, 0.0), rtol=tol)
    np.testing.assert_allclose(x.grad, np.where(kept, gy * scale, 0.0), rtol=tol)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_with_a_fixed_seed(seed):
    x = np.random.default_rng(seed).normal(size=(4, 3, 3, 2))
    # an int seed regenerates the same mask at every call gradcheck makes
    assert cl.gradcheck(lambda t: F.dropout(t, 0.4, rng=seed + 100), [x]) < 1e-7
    # composed with a nonlinearity on both sides
    def fn(t):
        return F.tanh(F.dropout(F.sigmoid(t), 0.5, rng=seed)) * t
    assert cl.gradcheck(fn, [x]) < 1e-7


def test_float32_stays_float32_with_a_numpy_float64_rate():
    x = cl.tensor(np.ones((20, 20), dtype=np.float32), requires_grad=True)
    y = F.dropout(x, np.float64(0.25), rng=0)
    y.backward(np.ones((20, 20), dtype=np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_dropout_applies_under_no_grad():
    """no_grad only stops the graph; training=True still drops units (inference is
    training=False)."""
    x = cl.tensor(np.ones((50, 50)), requires_grad=True)
    with cl.no_grad():
        y = F.dropout(x, 0.5, rng=0)
    assert not y.requires_grad
    assert np.count_nonzero(y.numpy()) < y.numpy().size


# ------------------------------------------------------------------------- identity cases
@pytest.mark.parametrize(
    "kw",
    [
        {"rate": 0.5, "training": False},
        {"rate": 0.0},
        {"rate": 0.0, "training": False},
        {"rate": 0.9, "training": np.bool_(False), "rng": 3},
    ],
)
def test_evaluation_mode_and_zero_rate_are_the_identity(kw):
    x = cl.tensor(np.random.default_rng(0).normal(size=(4, 5)), requires_grad=True)
    y = F.dropout(x, **kw)
    assert y is x  # the same tensor: no copy, no graph node
    gy = np.random.default_rng(1).normal(size=(4, 5))
    (y * 1.0).backward(gy)
    np.testing.assert_array_equal(x.grad, gy)


# ------------------------------------------------------------------------- PyTorch oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_scaling_convention_matches_torch(torch, dtype):
    """PyTorch draws other random numbers, so compare what does not depend on them: kept units
    are scaled by 1 / (1 - p) in forward and backward, and evaluation mode is the identity."""
    rate = 0.3
    x = _no_zeros(np.random.default_rng(6), (64, 32), dtype)
    gy = np.random.default_rng(7).normal(size=x.shape).astype(dtype)

    t = torch.from_numpy(x.copy()).requires_grad_(True)
    torch.manual_seed(0)
    ty = torch.nn.functional.dropout(t, p=rate, training=True)
    ty.backward(torch.from_numpy(gy.copy()))
    ty, tgx = ty.detach().numpy(), t.grad.numpy()
    tkept = ty != 0

    c = cl.tensor(x, requires_grad=True)
    y = F.dropout(c, rate, rng=0)
    y.backward(gy)
    kept = y.numpy() != 0

    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose((y.numpy() / x)[kept].mean(), (ty / x)[tkept].mean(), rtol=tol)
    np.testing.assert_allclose(y.numpy()[kept] / x[kept], (ty / x)[tkept][0], rtol=tol)
    np.testing.assert_allclose(c.grad[kept] / gy[kept], (tgx / gy)[tkept][0], rtol=tol)
    assert not np.any(c.grad[~kept]) and not np.any(tgx[~tkept])

    t_eval = torch.nn.functional.dropout(torch.from_numpy(x.copy()), p=rate, training=False)
    np.testing.assert_array_equal(
        F.dropout(cl.tensor(x), rate, training=False).numpy(), t_eval.numpy()
    )
