"""The nested-loop pooling reference, checked on its own: hand-computed numbers, finite
differences of its forward, and the adjoint identity of average pooling.

It is the oracle of tests/ops/test_pool.py, so nothing here uses the fast ops.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.reference.pool import (
    create_mask_from_window,
    distribute_value,
    pool_backward,
    pool_forward,
)


def _distinct(rng, shape):
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) / n


def test_helpers_of_the_notes():
    window = np.array([[1.0, 3.0], [4.0, 2.0]])
    np.testing.assert_array_equal(create_mask_from_window(window), [[False, False], [True, False]])
    np.testing.assert_array_equal(distribute_value(2.0, np.ones((2, 2))), np.full((2, 2), 0.5))
    real = np.array([[0.0, 0.0], [0.0, 1.0]])  # a corner window: one real cell, three padded
    np.testing.assert_array_equal(distribute_value(3.0, real), [[0, 0], [0, 3.0]])


def test_max_and_average_hand_values():
    x = np.array([[1.0, 2, 5, 6], [3, 4, 7, 8], [-1, -2, 0, 9], [-3, -4, 1, 2]])[None, :, :, None]
    A, cache = pool_forward(x, f=2, stride=2, mode="max")
    np.testing.assert_array_equal(A[0, :, :, 0], [[4, 8], [-1, 9]])
    dA = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    np.testing.assert_array_equal(
        pool_backward(dA, cache)[0, :, :, 0],
        [[0, 0, 0, 0], [0, 1, 0, 2], [3, 0, 0, 4], [0, 0, 0, 0]],
    )
    A, cache = pool_forward(x, f=2, stride=2, mode="average")
    np.testing.assert_array_equal(A[0, :, :, 0], [[2.5, 6.5], [-2.5, 3.0]])
    np.testing.assert_array_equal(
        pool_backward(dA, cache)[0, :, :, 0], np.kron([[1, 2], [3, 4]], np.ones((2, 2))) / 4
    )


def test_overlapping_windows_hand_values():
    x = np.array([[1.0, 5, 2], [0, 3, 4], [6, 1, 0]])[None, :, :, None]
    A, cache = pool_forward(x, f=2, stride=1, mode="max")
    np.testing.assert_array_equal(A[0, :, :, 0], [[5, 5], [6, 4]])
    dA_prev = pool_backward(np.ones((1, 2, 2, 1)), cache)
    # the 5 is the max of two windows and gets both gradients
    np.testing.assert_array_equal(dA_prev[0, :, :, 0], [[0, 2, 0], [0, 0, 1], [1, 0, 0]])


def test_padding_is_never_a_max_and_never_counted():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # all negative: a zero pad would win
    A, _ = pool_forward(x, f=3, stride=1, mode="max", padding=1)
    np.testing.assert_array_equal(A[0, :, :, 0], [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]])
    A, _ = pool_forward(x, f=3, stride=1, mode="average", padding=1)
    assert A[0, 0, 0, 0] == -(1 + 2 + 4 + 5) / 4
    assert A[0, 1, 1, 0] == -5.0


def test_same_padding_output_size_and_extra_at_bottom_right():
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    A, _ = pool_forward(x, f=2, stride=2, mode="average", padding="same")
    assert A.shape == (1, 3, 3, 1)  # ceil(5 / 2)
    assert A[0, 0, 0, 0] == (0 + 1 + 5 + 6) / 4  # nothing padded at the top/left
    assert A[0, 2, 2, 0] == 24.0  # the bottom-right window has one real cell
    A, _ = pool_forward(x, f=3, stride=1, mode="max", padding="same")
    assert A.shape == (1, 5, 5, 1)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("f,stride,padding", [(2, 2, 0), (3, 1, 1), (2, 1, "same"), (3, 2, 1)])
def test_backward_matches_finite_differences(mode, f, stride, padding):
    rng = np.random.default_rng(0)
    x = _distinct(rng, (2, 4, 5, 2))
    A, cache = pool_forward(x, f, stride, mode=mode, padding=padding)
    dA = rng.normal(size=A.shape)
    analytic = pool_backward(dA, cache)
    numeric = np.zeros_like(x)
    eps = 1e-6
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = np.sum(
            dA
            * (
                pool_forward(plus, f, stride, mode, padding)[0]
                - pool_forward(minus, f, stride, mode, padding)[0]
            )
        ) / (2 * eps)
    rel = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert rel < 1e-7


@pytest.mark.parametrize("padding", [0, 1, "same"])
def test_average_backward_is_the_adjoint(padding):
    """Average pooling is linear, so <dA, pool(x)> = <pool_backward(dA), x> for every x, dA."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 6, 3))
    A, cache = pool_forward(x, 3, 2, mode="average", padding=padding)
    dA = rng.normal(size=A.shape)
    np.testing.assert_allclose(np.sum(dA * A), np.sum(pool_backward(dA, cache) * x), rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"pool_forward: mode must be 'max' or 'average'"):
        pool_forward(np.zeros((1, 4, 4, 1)), 2, 2, mode="lp")
    with pytest.raises(ValueError, match=r"pool_forward: padding must be 'valid', 'same' or"):
        pool_forward(np.zeros((1, 4, 4, 1)), 2, 2, padding="full")
    with pytest.raises(ValueError, match=r"pool_forward: the window f=5 is larger than"):
        pool_forward(np.zeros((1, 4, 4, 1)), 5, 1)
