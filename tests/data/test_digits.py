"""data.digits.mnist_style: a drawn digit brought to MNIST's convention (LeCun et al.'s recipe).

Oracles: hand-computed placements of bars, and MNIST's own test images, which were made by
this recipe: drawn back as a pen would (black on white, four times larger, off-centre on a
larger page), each must come back as the original.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import data
from cnnlab.data.digits import is_light_background, mnist_style


def test_a_black_bar_on_white_paper_by_hand():
    paper = np.ones((60, 40))
    paper[10:30, 5:15] = 0.0  # 20 x 10 of ink
    digit = mnist_style(paper)
    assert digit.shape == (28, 28, 1) and digit.dtype == np.float32
    # already 20 high: kept at 20 x 10; its centre of mass (9.5, 4.5) goes to (14, 14),
    # rounded half up: rows 5..24, columns 10..19
    expected = np.zeros((28, 28))
    expected[5:25, 10:20] = 1.0
    np.testing.assert_array_equal(digit[:, :, 0], expected)


def test_scaled_into_20x20_keeping_the_aspect_ratio():
    paper = np.full((200, 300, 3), 0.9)  # light grey RGB paper
    paper[50:130, 100:140] = 0.1  # 80 x 40 of dark ink -> 20 x 10
    digit = mnist_style(paper)[:, :, 0]
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    assert (len(rows), len(cols)) == (20, 10)
    np.testing.assert_allclose(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1.0)
    wide = np.zeros((30, 90))
    wide[10:20, 0:90] = 1.0  # white on black already, 10 x 90 -> 2 x 20 (rounded)
    assert not is_light_background(wide)
    out = mnist_style(wide)[:, :, 0]
    assert np.count_nonzero(out.any(axis=0)) == 20 and np.count_nonzero(out.any(axis=1)) == 2


def test_mnist_test_digits_drawn_black_on_white_come_back():
    x = data.mnist("test").x[:200, :, :, 0]
    same = []
    for image in x:
        page = np.zeros((200, 160))
        page[30:142, 40:152] = np.kron(image, np.ones((4, 4)))  # 4x larger, off-centre
        drawn = 1.0 - page  # black ink on white paper
        assert is_light_background(drawn)
        back = mnist_style(drawn)[:, :, 0]
        same.append(np.corrcoef(back.ravel(), image.ravel())[0, 1])
    same = np.array(same)
    assert np.median(same) > 0.999  # most come back exactly
    assert np.mean(same > 0.95) > 0.9  # a few land a pixel away (MNIST's own rounding)


def test_blank_page_and_bad_shapes():
    np.testing.assert_array_equal(mnist_style(np.ones((10, 10))), np.zeros((28, 28, 1)))
    with pytest.raises(ValueError, match=r"mnist_style: expected one image \(H, W\), \(H, W, 1\) "
                                         r"or \(H, W, 3\); received shape \(2, 3, 4, 1\)"):
        mnist_style(np.zeros((2, 3, 4, 1)))


def test_docstring_examples_of_digits():
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module("cnnlab.data.digits")).failed == 0
