"""Bring a picture of one hand-written digit to MNIST's convention, as the dataset was made.

LeCun, Cortes and Burges describe MNIST's images: "The original black and white (bilevel)
images from NIST were size normalized to fit in a 20x20 pixel box while preserving their
aspect ratio ... the images were centered in a 28x28 image by computing the center of mass of
the pixels, and translating the image so as to position this point at the center of the 28x28
field." The digits are white (ink = 1) on black (0).

A digit drawn in a paint program or photographed is usually dark on light, fills its canvas,
and sits anywhere in it; fed as it is to a model trained on MNIST, it is misread (inverted, a
"7" becomes mostly ink and reads as "0"). :func:`mnist_style` applies the dataset's recipe:

1. grayscale, ink = 1: a picture whose border is lighter than its middle is inverted;
2. the background level (the border's median) is subtracted and the ink scaled to reach 1;
3. crop to the ink's bounding box (pixels above ``threshold``);
4. scale so that the longer side is 20 pixels, keeping the aspect ratio (anti-aliased);
5. paste into a black 28x28 field so that the centre of mass, in pixel indices, lands at
   (14, 14) (where it lies in MNIST's own images: 14.0 +- 0.3 over the test set).
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_light_background", "mnist_style"]

FIELD = 28  # MNIST's image side
BOX = 20  # the side of the box the digit is scaled into


def _gray(image) -> np.ndarray:
    """(H, W) float64 in [0, 1] from (H, W), (H, W, 1) or (H, W, 3) values in [0, 1]."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 3:
        a = a @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's "L"
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or min(a.shape) < 1:
        raise ValueError(
            f"mnist_style: expected one image (H, W), (H, W, 1) or (H, W, 3); received shape "
            f"{np.shape(image)}"
        )
    return a


def _border(a: np.ndarray) -> np.ndarray:
    """The pixels of the outermost rows and columns (the background, for a centred drawing)."""
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def is_light_background(image) -> bool:
    """True when the picture's border is lighter than its middle: dark ink on light paper,
    the opposite of MNIST's white on black."""
    a = _gray(image)
    return bool(np.median(_border(a)) > 0.5)


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) by area averaging: each output pixel is the mean of the input area it covers
    (anti-aliased when shrinking, bilinear-like when enlarging)."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        # (n_out, n_in): overlap of output cell i, [i, i+1) * n_in / n_out, with input cell j
        edges = np.arange(n_out + 1) * (n_in / n_out)
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(n_in)[None, :]
        overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)

    return weights(a.shape[0], h) @ a @ weights(a.shape[1], w).T  # (h, H) (H, W) (W, w)


def mnist_style(image, threshold: float = 0.2) -> np.ndarray:
    """One digit picture as MNIST made its images: white on black, scaled into 20x20 keeping
    its aspect ratio, centred by mass in 28x28 (module docstring).

    ``image``: (H, W), (H, W, 1) or (H, W, 3), values in [0, 1], any size. ``threshold``:
    the ink level (after step 2) that counts for the bounding box.

    Shape: -> (28, 28, 1) float32 in [0, 1].

    >>> import numpy as np
    >>> paper = np.ones((60, 40)); paper[10:30, 5:15] = 0.0   # a black bar on white
    >>> digit = mnist_style(paper)
    >>> digit.shape, digit[5:25, 10:20].min(), float(digit.sum())
    ((28, 28, 1), np.float32(1.0), 200.0)
    """
    a = _gray(image)
    if is_light_background(a):
        a = 1.0 - a
    background = float(np.median(_border(a)))
    a = np.clip(a - background, 0.0, None)
    peak = float(a.max())
    out = np.zeros((FIELD, FIELD, 1), dtype=np.float32)
    if peak <= 0:
        return out  # a blank page: nothing to centre
    a = a / peak
    rows = np.flatnonzero((a > threshold).any(axis=1))
    cols = np.flatnonzero((a > threshold).any(axis=0))
    a = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w) the ink's bounding box
    h, w = a.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    a = np.clip(_resize(a, nh, nw), 0.0, 1.0)  # (nh, nw), longer side 20
    # the centre of mass (in pixel indices) goes to row and column 14, as in MNIST
    total = a.sum()
    com_r = (a.sum(axis=1) @ np.arange(nh)) / total
    com_c = (a.sum(axis=0) @ np.arange(nw)) / total
    top = int(np.floor(FIELD / 2 - com_r + 0.5))  # rounded half up
    left = int(np.floor(FIELD / 2 - com_c + 0.5))
    top = min(max(top, 0), FIELD - nh)  # keep the whole digit in the field
    left = min(max(left, 0), FIELD - nw)
    out[top : top + nh, left : left + nw, 0] = a
    return out
