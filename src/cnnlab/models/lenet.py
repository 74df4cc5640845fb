"""LeNet-5 (LeCun et al., 1998): two convolutions with pooling, then three dense layers.

Legend: N batch, H/W height/width, C channels.
"""

from __future__ import annotations

import numpy as np

from cnnlab import nn
from cnnlab.models._common import Builder, FeaturesClassifier, walk_hw

__all__ = ["LeNet5", "lenet5"]


class LeNet5(FeaturesClassifier):
    """LeNet-5: ``features`` (conv, activation, pool, twice) -> Flatten -> ``classifier``."""


def lenet5(num_classes=10, *, variant="modern", in_channels=1, input_size=None, seed=None,
           init=None, dtype=np.float32) -> LeNet5:
    """LeNet-5, in the modern form (default) or the classic one.

    modern (28x28x1 by default, the MNIST size)::

        conv 5x5 'same' 6 -> ReLU -> maxpool 2 -> conv 5x5 16 -> ReLU -> maxpool 2
        -> dense 120 -> ReLU -> dense 84 -> ReLU -> dense num_classes

    classic (32x32x1 by default, MNIST padded to 32 as in the paper): the same with 'valid'
    convolutions, tanh activations and average pooling (the paper's trainable subsampling
    and C3's partial connections are left out; the RBF output layer is a dense layer).

    Both have 61,706 parameters for 10 classes: 156 + 2,416 (convolutions), 48,120 + 10,164 +
    850 (dense). Weights start He-normal (modern) or LeCun-normal (classic, for tanh) unless
    ``init`` says otherwise.

    Layer names: ``features.0`` (conv1), ``features.3`` (conv2), ``classifier.0`` (dense 120),
    ``classifier.2`` (dense 84), ``classifier.4`` (the head).

    Shape:
        (N, H, W, in_channels) -> (N, num_classes), H, W = ``input_size``.

    >>> import numpy as np, cnnlab as cl
    >>> model = lenet5(seed=0)
    >>> model(cl.tensor(np.zeros((2, 28, 28, 1), np.float32))).shape
    (2, 10)
    """
    where = "lenet5"
    if variant not in ("modern", "classic"):
        raise ValueError(
            f"{where}: variant must be 'modern' or 'classic'; received variant={variant!r}"
        )
    modern = variant == "modern"
    if input_size is None:
        input_size = 28 if modern else 32
    b = Builder(where, num_classes=num_classes, in_channels=in_channels,
                input_size=input_size, init=init, seed=seed, dtype=dtype)
    default = "he_normal" if modern else "lecun_normal"
    act = nn.ReLU if modern else nn.Tanh
    pool = nn.MaxPool2D if modern else nn.AvgPool2D
    features = nn.Sequential(
        b.conv(b.in_channels, 6, 5, padding="same" if modern else 0, default=default),
        act(),
        pool(2),
        b.conv(6, 16, 5, default=default),
        act(),
        pool(2),
    )
    h, w = walk_hw(features, b.input_hw, where, "features")
    classifier = nn.Sequential(
        b.dense(h * w * 16, 120, default=default),
        act(),
        b.dense(120, 84, default=default),
        act(),
        b.dense(84, b.num_classes, default=default),
    )
    model = LeNet5(features, classifier)
    model.variant = variant
    return b.finish(model, "lenet5", "classifier.4", {"classifier.0": (h, w, 16)})
