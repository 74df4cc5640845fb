"""Test helpers for the training loop: a synthetic image task and small models.

Also imported by ``train_script.py`` (run as a subprocess), so it only needs numpy and cnnlab.
"""

from __future__ import annotations

import numpy as np

from cnnlab import nn

# Each class is a bright bar: 0 a horizontal bar near the top, 1 near the bottom,
# 2 a vertical bar on the left, 3 on the right.
N_CLASSES = 4


def bars(n: int, size: int = 12, noise: float = 0.3, seed: int = 0):
    """``n`` images (n, size, size, 1) float32 and their labels (n,) int64, classes balanced."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % N_CLASSES
    rng.shuffle(y)
    x = rng.normal(0.0, noise, (n, size, size, 1)).astype(np.float32)
    a, b = size // 6, size // 6 + 2  # rows/cols of the near bar
    c, d = size - b, size - a  # rows/cols of the far bar
    x[y == 0, a:b, :, 0] += 1.0
    x[y == 1, c:d, :, 0] += 1.0
    x[y == 2, :, a:b, 0] += 1.0
    x[y == 3, :, c:d, 0] += 1.0
    return x, y.astype(np.int64)


def small_cnn(
    seed: int = 0, dropout: float = 0.0, batch_norm: bool = False, size: int = 12, channels: int = 4
):
    """Conv2D(3x3) -> [BatchNorm2D] -> ReLU -> MaxPool2D(2) -> Flatten -> [Dropout] -> Dense(4)."""
    layers = [nn.Conv2D(1, channels, 3, seed=seed)]
    if batch_norm:
        layers.append(nn.BatchNorm2D(channels))
    layers += [nn.ReLU(), nn.MaxPool2D(2), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout, seed=seed + 1000))
    side = (size - 2) // 2
    layers.append(nn.Dense(side * side * channels, N_CLASSES, seed=seed + 1))
    return nn.Sequential(*layers)


def weights(model) -> dict:
    """A copy of the model's state dict (parameters and buffers)."""
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k, va in a.items():
        vb = b[k]
        assert va.dtype == vb.dtype, k
        assert np.array_equal(va, vb), f"{k} differs: max |diff| {np.abs(va - vb).max()}"


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean over the batch of -log softmax(logits)[y], in float64 (the oracle)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())
