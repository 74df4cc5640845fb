"""A shifted MNIST: the course's "web photos vs blurry phone photos", without your own data.

The course's data-mismatch example: a cat app is trained on many sharp web pictures, but its
users upload blurry, low-resolution phone photos, and those are what the dev and test sets must
hold. ``mnist_shifted`` plays the phone photos for MNIST: the same digits made worse the same
way every time (seeded), so that a model trained on plain MNIST shows a data-mismatch gap (dev
error well above training-dev error) that ``cnnlab diagnose`` can find.

Each image, in order:

1. lower resolution: average-pooled by ``downscale`` (28x28 -> 14x14 for 2), then enlarged back
   with nearest-neighbour (blocky, as a cheap camera's upscaled picture);
2. blur: a Gaussian of standard deviation ``blur`` pixels (separable: rows then columns,
   kernel radius ceil(3 sigma), edges replicated);
3. lower contrast: x -> 0.15 + 0.7 x (a grey, under-exposed picture);
4. sensor noise: Gaussian of standard deviation ``noise``, from ``numpy.random.default_rng(seed)``;
   clipped to [0, 1].

Splits: 'dev' and 'test' are two disjoint halves of MNIST's test split (stratified by class,
the halves fixed by ``seed``), shifted; 'train' is the shifted training split (to train on
phone-like data too). With the bundled subset that is 1,250 dev and 1,250 test images.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.data.dataset import ArrayDataset

__all__ = ["shift_images", "mnist_shifted", "SHIFT_DEFAULTS"]

SHIFT_DEFAULTS = {"downscale": 2, "blur": 1.0, "noise": 0.08}


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()  # (2R+1,)


def _blur_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Convolve along ``axis`` (1 = rows of pixels, i.e. H; 2 = W) with replicated edges."""
    r = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.pad(x, pad, mode="edge")
    n = x.shape[axis]
    out = np.zeros_like(x)
    for j, w in enumerate(kernel):  # 2R+1 shifted copies, weighted: no loop over pixels
        out += w * np.take(xp, np.arange(j, j + n), axis=axis)
    return out


def shift_images(x, seed: int = 0, downscale: int = 2, blur: float = 1.0,
                 noise: float = 0.08) -> np.ndarray:
    """The shifted version of images ``x`` (N, H, W, C) in [0, 1]; see the module docstring.

    Same images and seed, same result. ``downscale`` must divide H and W (1: keep the
    resolution); ``blur`` 0 and ``noise`` 0 switch those steps off.

    Shape: (N, H, W, C) float32 in [0, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"shift_images: x must be images (N, H, W, C); received shape {x.shape}")
    n, h, w, c = x.shape
    if not isinstance(downscale, int) or downscale < 1 or h % downscale or w % downscale:
        raise ValueError(f"shift_images: downscale must be an int >= 1 that divides H={h} and "
                         f"W={w}; received {downscale!r}")
    if not blur >= 0 or not noise >= 0:
        raise ValueError(f"shift_images: blur and noise must be >= 0; received blur={blur!r}, "
                         f"noise={noise!r}")
    f = downscale
    if f > 1:
        small = x.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))  # (N, H/f, W/f, C)
        x = np.repeat(np.repeat(small, f, axis=1), f, axis=2)  # (N, H, W, C)
    if blur > 0:
        k = _gaussian_kernel(blur)
        x = _blur_axis(_blur_axis(x, k, 1), k, 2)
    x = 0.15 + 0.7 * x
    if noise > 0:
        x = x + np.random.default_rng(seed).normal(0.0, noise, size=x.shape)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def mnist_shifted(split, root=None, seed: int = 0, download: bool = False) -> ArrayDataset:
    """Shifted MNIST ("blurry phone photos"): ``split`` 'dev', 'test' or 'train'.

    root, download: as for :func:`cnnlab.data.mnist` (None: the bundled subset).

    Shape: x (N, 28, 28, 1) float32 in [0, 1]; y (N,) int64.

    >>> dev, test = mnist_shifted("dev"), mnist_shifted("test")
    >>> len(dev), len(test), dev.x.shape[1:]
    (1250, 1250, (28, 28, 1))
    """
    from cnnlab.data.datasets import mnist
    from cnnlab.data.splits import split_indices

    if split not in ("dev", "test", "train"):
        raise ValueError(f"mnist_shifted: split must be 'dev', 'test' or 'train'; received "
                         f"{split!r}")
    base = mnist("train" if split == "train" else "test", root=root, download=download)
    x, y = base.x, base.y
    if split != "train":
        dev_idx, test_idx = split_indices(y, [len(y) // 2], seed=seed, stratify=True)
        idx = dev_idx if split == "dev" else test_idx
        x, y = x[idx], y[idx]
    # a different noise stream for each split, so that dev and test are not alike by chance
    stream = {"train": 0, "dev": 1, "test": 2}[split]
    shifted = shift_images(x, seed=seed * 3 + stream, **SHIFT_DEFAULTS)
    return ArrayDataset(shifted, y, classes=base.classes)
