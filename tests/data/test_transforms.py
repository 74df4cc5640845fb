"""Batch transforms: shapes, dtypes, determinism per seed, and known cases against loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.data import (
    Compose,
    Normalize,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomShift,
    Scale,
)

RANDOM = [
    lambda seed: RandomShift(2, seed=seed),
    lambda seed: RandomCrop(6, padding=1, seed=seed),
    lambda seed: RandomAffine(15, scale=(0.8, 1.2), seed=seed),
    lambda seed: RandomHorizontalFlip(0.5, seed=seed),
]


def _batch(n=16, h=8, w=8, c=2, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype(dtype)


@pytest.mark.parametrize("make", RANDOM)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_and_no_in_place(make, dtype):
    x = _batch(dtype=dtype)
    before = x.copy()
    y = make(0)(x)
    assert y.dtype == dtype
    assert y.shape == ((16, 6, 6, 2) if isinstance(make(0), RandomCrop) else x.shape)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("make", RANDOM)
def test_deterministic_per_seed(make):
    x = _batch()
    assert np.array_equal(make(3)(x), make(3)(x))
    assert not np.array_equal(make(3)(x), make(4)(x))
    t = make(3)
    assert not np.array_equal(t(x), t(x))  # the Generator advances
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(make(0)(x, rng_a), make(1)(x, rng_b))  # a given rng wins


def _shift_reference(img, dy, dx):
    """out[i, j] = img[i - dy, j - dx], 0 outside: the nested loops."""
    h, w, _ = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[i, j] = img[i - dy, j - dx]
    return out


def test_shift_moves_a_delta_by_at_most_one_pixel_and_matches_loops():
    n, h, w = 200, 7, 9
    x = np.zeros((n, h, w, 2), np.float32)
    x[:, 3, 4, 0] = 1.0  # channel 0: a delta in the interior, to read the shift from
    x[..., 1] = np.random.default_rng(1).random((n, h, w))  # channel 1: content
    y = RandomShift(1, seed=0)(x)
    seen = set()
    for k in range(n):
        (i,), (j,) = np.nonzero(y[k, :, :, 0])
        dy, dx = i - 3, j - 4
        assert abs(dy) <= 1 and abs(dx) <= 1 and y[k, i, j, 0] == 1.0
        assert np.array_equal(y[k], _shift_reference(x[k], dy, dx))
        seen.add((dy, dx))
    assert len(seen) == 9  # every shift in [-1, 1]^2 occurs


def test_shift_zero_and_crop_full_are_identity():
    x = _batch()
    assert np.array_equal(RandomShift(0, seed=0)(x), x)
    assert np.array_equal(RandomCrop(8, padding=0, seed=0)(x), x)


def test_crop_is_a_window_of_the_padded_image():
    n, h, w, p = 50, 5, 6, 2
    x = (np.arange(h * w, dtype=np.float32).reshape(1, h, w, 1) + 1) * np.ones((n, 1, 1, 1))
    y = RandomCrop((4, 3), padding=p, seed=0)(x)
    padded = np.pad(x[0, :, :, 0], p)
    tops = set()
    for k in range(n):
        matches = [
            (t, l)
            for t in range(h + 2 * p - 4 + 1)
            for l in range(w + 2 * p - 3 + 1)
            if np.array_equal(padded[t : t + 4, l : l + 3], y[k, :, :, 0])
        ]
        assert matches, f"crop {k} is not a window of the padded image"
        tops.add(matches[0][0])
    assert len(tops) > 3


def test_affine_identity_is_exact():
    x = _batch(h=28, w=28, c=1)
    assert np.array_equal(RandomAffine(0, seed=0)(x), x)
    assert np.array_equal(RandomAffine((0, 0), scale=(1, 1), seed=0)(x), x)
    x7 = _batch(h=7, w=5, c=3, dtype=np.float64)
    assert np.array_equal(RandomAffine(0, seed=1)(x7), x7)


@pytest.mark.parametrize("k,degrees", [(1, 90), (2, 180), (3, -90)])
def test_affine_quarter_turns_match_rot90(k, degrees):
    """Positive angles turn the content counterclockwise, like np.rot90."""
    x = _batch(h=9, w=9, c=2)
    y = RandomAffine((degrees, degrees), seed=0)(x)
    assert np.allclose(y, np.rot90(x, k=k, axes=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("degrees,zoom", [(0, 1.25), (20, 1.0), (-12, 0.9)])
def test_affine_on_a_linear_ramp_matches_the_formula(degrees, zoom):
    """Bilinear sampling reproduces a linear function exactly where all 4 neighbours exist."""
    h, w = 15, 13
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = (0.3 * i - 0.2 * j + 5.0)[None, :, :, None]
    y = RandomAffine((degrees, degrees), scale=(zoom, zoom), seed=0)(ramp)
    a = np.deg2rad(degrees)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    sy = cy + (np.cos(a) * (i - cy) + np.sin(a) * (j - cx)) / zoom
    sx = cx + (-np.sin(a) * (i - cy) + np.cos(a) * (j - cx)) / zoom
    inside = (sy >= 0) & (sy <= h - 1) & (sx >= 0) & (sx <= w - 1)
    expected = 0.3 * sy - 0.2 * sx + 5.0
    assert inside.sum() > 100
    assert np.allclose(y[0, :, :, 0][inside], expected[inside], atol=1e-4)
    far = (sy < -1) | (sy > h) | (sx < -1) | (sx > w)
    assert np.all(y[0, :, :, 0][far] == 0)  # fill outside


def test_affine_draws_within_ranges():
    t = RandomAffine(10, scale=(0.9, 1.1), seed=0)
    assert t.degrees == (-10.0, 10.0) and t.scale == (0.9, 1.1)
    with pytest.raises(ValueError, match="RandomAffine: scale must be a pair 0 < lo <= hi"):
        RandomAffine(5, scale=(1.2, 0.8))
    with pytest.raises(TypeError, match="RandomAffine: x must be a float batch"):
        t(np.zeros((2, 4, 4, 1), np.uint8))


def test_flip():
    x = _batch()
    always = RandomHorizontalFlip(1.0, seed=0)
    assert np.array_equal(always(x), x[:, :, ::-1, :])
    assert np.array_equal(always(always(x)), x)
    assert np.array_equal(RandomHorizontalFlip(0.0, seed=0)(x), x)
    big = _batch(n=1000, h=2, w=3, c=1)
    y = RandomHorizontalFlip(0.5, seed=1)(big)
    flipped = np.all(y == big[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(y == big, axis=(1, 2, 3))
    assert np.all(flipped | kept) and 400 < flipped.sum() < 600
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]; received 1.5"):
        RandomHorizontalFlip(1.5)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    c=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_flip_twice_and_shift_properties(n, h, w, c, seed):
    x = np.random.default_rng(seed).random((n, h, w, c))
    flip = RandomHorizontalFlip(1.0)
    assert np.array_equal(flip(flip(x)), x)
    y = RandomShift(1, seed=seed)(x)
    assert y.shape == x.shape and np.all(np.isin(y, np.append(x.ravel(), 0.0)))


def test_scale_normalize_compose():
    u8 = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1)
    scaled = Scale()(u8)
    assert scaled.dtype == np.float32
    assert scaled.ravel().tolist() == [0.0, np.float32(0.2), 1.0]
    x = np.array([[[[0.5, 1.0], [0.0, 0.25]]]], np.float32)  # (1, 1, 2, 2): two channels
    y = Normalize([0.5, 0.25], [0.5, 0.25])(x)
    assert y.dtype == np.float32 and y.ravel().tolist() == [0.0, 3.0, -1.0, 0.0]
    t = Compose([Scale(), Normalize(0.5, 0.5)])
    assert t(u8).ravel().tolist() == pytest.approx([-1.0, -0.6, 1.0])
    assert "Scale" in repr(t) and "Normalize" in repr(t)
    with pytest.raises(TypeError, match="Normalize: x must be a float batch"):
        Normalize(0.5, 0.5)(u8)
    with pytest.raises(ValueError, match="Normalize: mean has 3 values but x has 2 channels"):
        Normalize([0, 0, 0], 1)(x)
    with pytest.raises(ValueError, match="Normalize: std must be > 0"):
        Normalize(0, 0)


def test_batch_shape_errors():
    with pytest.raises(
        ValueError,
        match=r"RandomShift: x must be a 4-D batch \(N, H, W, C\); received x.shape=\(28, 28\)",
    ):
        RandomShift(1)(np.zeros((28, 28)))
    with pytest.raises(ValueError, match="RandomCrop: crop size"):
        RandomCrop(10, padding=0)(np.zeros((1, 8, 8, 1)))
