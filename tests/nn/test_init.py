"""Initializers: fans, the mean and spread of a large draw against the formulas (tolerances from
the sample size), seeds, and each layer's default."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab import nn
from cnnlab.nn import init

N_SIGMA = 5  # a correct draw falls outside 5 standard errors with probability < 1e-6


def test_fans_dense_and_conv_hwio():
    assert init.fans((400, 120)) == (400, 120)
    assert init.fans((5, 5, 3, 6)) == (75, 150)  # fan_in = KH*KW*C_in, fan_out = KH*KW*C_out
    assert init.fans((3, 3, 2, 8)) == (18, 72)  # grouped: shape[2] is already C_in / groups
    assert init.fans((7,)) == (7, 7)


# (initializer, shape, expected std from the formula with hand-computed fans, uniform limit)
# (3, 3, 16, 32): fan_in = 144, fan_out = 288.  (200, 100): fan_in 200, fan_out 100.
CASES = [
    (init.he_normal, (3, 3, 16, 32), math.sqrt(2 / 144), None),
    (init.he_uniform, (3, 3, 16, 32), math.sqrt(2 / 144), math.sqrt(6 / 144)),
    (init.xavier_normal, (200, 100), math.sqrt(2 / 300), None),
    (init.glorot_normal, (3, 3, 16, 32), math.sqrt(2 / 432), None),
    (init.xavier_uniform, (200, 100), math.sqrt(2 / 300), math.sqrt(6 / 300)),
    (init.glorot_uniform, (3, 3, 16, 32), math.sqrt(2 / 432), math.sqrt(6 / 432)),
    (init.lecun_normal, (200, 100), math.sqrt(1 / 200), None),
    (init.lecun_uniform, (3, 3, 16, 32), math.sqrt(1 / 144), math.sqrt(3 / 144)),
]


@pytest.mark.parametrize("fn,shape,std,limit", CASES,
                         ids=[c[0].__name__ + str(c[1]) for c in CASES])
def test_statistics_of_a_large_draw(fn, shape, std, limit):
    w = fn(shape, rng=0).astype(np.float64)
    n = w.size
    assert w.shape == shape and fn(shape, rng=0).dtype == np.float32
    # mean: standard error std / sqrt(n)
    assert abs(w.mean()) < N_SIGMA * std / math.sqrt(n)
    # sample std: standard error std * sqrt((kurtosis - 1) / (4 n)); kurtosis 3 (normal), 1.8
    # (uniform)
    kurtosis = 3.0 if limit is None else 1.8
    assert abs(w.std() - std) < N_SIGMA * std * math.sqrt((kurtosis - 1) / (4 * n))
    if limit is not None:
        assert w.min() >= -limit and w.max() <= limit
        assert w.max() > limit * (1 - 20 / n)  # the draws reach the ends of the interval


def test_fan_overrides():
    w = init.he_normal((100, 1000), rng=0, fan_in=50)
    std = math.sqrt(2 / 50)
    assert abs(w.std() - std) < N_SIGMA * std * math.sqrt(2 / (4 * w.size))


def test_same_seed_same_weights_and_generators_advance():
    np.testing.assert_array_equal(init.he_normal((4, 5), rng=3), init.he_normal((4, 5), rng=3))
    assert not np.array_equal(init.he_normal((4, 5), rng=3), init.he_normal((4, 5), rng=4))
    g = np.random.default_rng(0)
    a, b = init.xavier_uniform((4, 5), rng=g), init.xavier_uniform((4, 5), rng=g)
    assert not np.array_equal(a, b)
    g2 = np.random.default_rng(0)
    np.testing.assert_array_equal(a, init.xavier_uniform((4, 5), rng=g2))
    assert init.he_normal((2, 2), rng=0, dtype=np.float64).dtype == np.float64


def test_constant_zeros_ones():
    np.testing.assert_array_equal(init.zeros((2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(init.ones(4), np.ones(4, np.float32))
    np.testing.assert_array_equal(init.constant((2, 2), 0.5), np.full((2, 2), 0.5, np.float32))


def test_layer_defaults_he_normal_weights_zero_biases():
    conv = nn.Conv2D(16, 32, 3, seed=0)
    np.testing.assert_array_equal(conv.weight.data, init.he_normal((3, 3, 16, 32), rng=0))
    np.testing.assert_array_equal(conv.bias.data, np.zeros(32, np.float32))
    dense = nn.Dense(30, 20, seed=1)
    np.testing.assert_array_equal(dense.weight.data, init.he_normal((30, 20), rng=1))
    np.testing.assert_array_equal(dense.bias.data, np.zeros(20, np.float32))
    bn = nn.BatchNorm2D(5)
    assert (bn.gamma.data == 1).all() and (bn.beta.data == 0).all()
    assert (bn.running_mean == 0).all() and (bn.running_var == 1).all()


def test_grouped_conv_fan_in_counts_the_group_only():
    conv = nn.Conv2D(8, 8, 3, groups=4, init="he_uniform", seed=0)
    assert conv.weight.shape == (3, 3, 2, 8)
    assert np.abs(conv.weight.data).max() <= math.sqrt(6 / 18)


def test_layers_accept_names_numbers_functions_and_seeds():
    assert (nn.Dense(3, 2, init=0.5).weight.data == 0.5).all()
    assert (nn.Dense(3, 2, init="zeros").weight.data == 0).all()
    w = nn.Dense(3, 2, init=lambda shape, rng: np.full(shape, 2.0), seed=0).weight.data
    assert (w == 2).all() and w.dtype == np.float32
    a = nn.Conv2D(2, 3, 3, init="xavier_normal", seed=np.random.default_rng(5)).weight.data
    np.testing.assert_array_equal(a, init.xavier_normal((3, 3, 2, 3), rng=5))
    np.testing.assert_array_equal(nn.Conv2D(2, 3, 3, seed=9).weight.data,
                                  nn.Conv2D(2, 3, 3, seed=9).weight.data)


def test_bad_initializers_are_explained():
    with pytest.raises(ValueError, match=r"Dense: unknown initializer 'he'; use one of"):
        nn.Dense(2, 2, init="he")
    with pytest.raises(ValueError, match=r"Dense: the initializer returned shape \(3,\); "
                                         r"needed \(2, 2\)"):
        nn.Dense(2, 2, init=lambda shape, rng: np.zeros(3))
    with pytest.raises(TypeError, match=r"he_normal: rng must be an int, None or a "
                                        r"numpy.random.Generator; received 'x'"):
        init.he_normal((2, 2), rng="x")
