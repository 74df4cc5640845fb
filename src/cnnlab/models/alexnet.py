"""AlexNet (Krizhevsky et al., 2012) in the single-tower layout of torchvision.

Legend: N batch, H/W height/width, C channels.
"""

from __future__ import annotations

import numpy as np

from cnnlab import nn
from cnnlab.models._common import Builder, FeaturesClassifier, walk_hw

__all__ = ["AlexNet", "alexnet"]


class AlexNet(FeaturesClassifier):
    """AlexNet: ``features`` (5 convolutions, 3 max pools) -> Flatten -> ``classifier``."""


def alexnet(num_classes=1000, *, in_channels=3, input_size=224, width=1.0, hidden=4096,
            dropout=0.5, seed=None, init=None, dtype=np.float32) -> AlexNet:
    """AlexNet with torchvision's layer layout and names (one tower, 64-192-384-256-256).

    ::

        features:   0 conv 11x11/4 pad 2, 64   1 ReLU   2 maxpool 3/2
                    3 conv 5x5 pad 2, 192      4 ReLU   5 maxpool 3/2
                    6 conv 3x3 pad 1, 384      7 ReLU
                    8 conv 3x3 pad 1, 256      9 ReLU
                   10 conv 3x3 pad 1, 256     11 ReLU  12 maxpool 3/2
        classifier: 0 dropout  1 dense 256*6*6 -> 4096  2 ReLU
                    3 dropout  4 dense 4096 -> 4096     5 ReLU  6 dense 4096 -> num_classes

    61,100,840 parameters for 224x224x3 inputs and 1000 classes. torchvision puts an adaptive
    average pool to 6x6 before the classifier; at 224x224 it is the identity, and here the
    first dense layer takes whatever map ``input_size`` gives (C*H'*W' inputs) instead. The
    local response normalization of the paper is left out, as in torchvision.

    Args:
        width: multiplies the convolutions' channels; hidden: the dense layers' width;
        dropout: the rate of the two dropout layers (others: see :mod:`cnnlab.models`).

    Shape:
        (N, H, W, in_channels) -> (N, num_classes); H and W at least 63.

    >>> import numpy as np, cnnlab as cl
    >>> model = alexnet(10, input_size=64, width=0.125, hidden=32, seed=0)
    >>> model(cl.tensor(np.zeros((2, 64, 64, 3), np.float32))).shape
    (2, 10)
    """
    where = "alexnet"
    b = Builder(where, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                width=width, init=init, seed=seed, dtype=dtype)
    c1, c2, c3, c4, c5 = (b.ch(c) for c in (64, 192, 384, 256, 256))
    features = nn.Sequential(
        b.conv(b.in_channels, c1, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2D(3, stride=2),
        b.conv(c1, c2, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2D(3, stride=2),
        b.conv(c2, c3, 3, padding=1),
        nn.ReLU(),
        b.conv(c3, c4, 3, padding=1),
        nn.ReLU(),
        b.conv(c4, c5, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2D(3, stride=2),
    )
    h, w = walk_hw(features, b.input_hw, where, "features")
    classifier = nn.Sequential(
        b.dropout(dropout),
        b.dense(c5 * h * w, hidden),
        nn.ReLU(),
        b.dropout(dropout),
        b.dense(hidden, hidden),
        nn.ReLU(),
        b.dense(hidden, b.num_classes),
    )
    model = AlexNet(features, classifier)
    return b.finish(model, "alexnet", "classifier.6", {"classifier.1": (h, w, c5)})
