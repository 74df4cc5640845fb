"""The shifted MNIST ("blurry phone photos"): each step by hand, seeded, dev/test halves."""

import numpy as np
import pytest

from cnnlab import data
from cnnlab.data import mnist_shifted, shift_images, split_indices


def test_lower_resolution_by_hand():
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1) / 16
    out = shift_images(x, downscale=2, blur=0, noise=0)
    # 2x2 block means, repeated, then contrast 0.15 + 0.7 v
    block = np.array([[2.5, 4.5], [10.5, 12.5]]) / 16
    expected = 0.15 + 0.7 * np.repeat(np.repeat(block, 2, 0), 2, 1)
    assert out[0, :, :, 0] == pytest.approx(expected, abs=1e-6)


def test_blur_is_a_normalized_gaussian():
    x = np.zeros((1, 15, 15, 1))
    x[0, 7, 7, 0] = 1.0
    out = shift_images(x, downscale=1, blur=1.0, noise=0).astype(np.float64)
    psf = (out[0, :, :, 0] - 0.15) / 0.7  # undo the contrast step
    assert psf.sum() == pytest.approx(1.0, abs=1e-5)
    # a separable Gaussian: centre over its neighbour is exp(1/2) along each axis
    g = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    g /= g.sum()
    assert psf[7, 4:11] == pytest.approx(g * g[3], abs=1e-6)
    assert psf[4:11, 7] == pytest.approx(g * g[3], abs=1e-6)


def test_noise_is_seeded_and_clipped():
    x = np.full((4, 28, 28, 1), 0.5)
    a, b = shift_images(x, seed=1), shift_images(x, seed=1)
    assert (a == b).all() and not (a == shift_images(x, seed=2)).all()
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    noise = shift_images(x, downscale=1, blur=0, noise=0.08, seed=0) - (0.15 + 0.7 * 0.5)
    assert noise.std() == pytest.approx(0.08, rel=0.05)


def test_dev_and_test_are_disjoint_stratified_halves_of_the_test_split():
    base = data.mnist("test")
    dev, test = mnist_shifted("dev"), mnist_shifted("test")
    assert len(dev) == len(test) == len(base) // 2
    assert (np.bincount(dev.y, minlength=10) + np.bincount(test.y, minlength=10)
            == np.bincount(base.y, minlength=10)).all()
    assert np.abs(np.bincount(dev.y) - np.bincount(test.y)).max() <= 1
    # the documented recipe: the stratified half (seed 0) of the test split, noise stream 1
    idx = split_indices(base.y, [len(base) // 2], seed=0, stratify=True)[0]
    assert (dev.x == shift_images(base.x[idx], seed=1)).all()
    assert (dev.y == base.y[idx]).all()
    assert (mnist_shifted("dev").x == dev.x).all()  # deterministic


@pytest.mark.parametrize("kwargs, match", [
    ({"downscale": 3}, "downscale must be an int >= 1 that divides H=28 and W=28"),
    ({"blur": -1.0}, "blur and noise must be >= 0"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        shift_images(np.zeros((1, 28, 28, 1)), **kwargs)
    with pytest.raises(ValueError, match="split must be 'dev', 'test' or 'train'"):
        mnist_shifted("val")
