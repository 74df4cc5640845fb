"""VGG (Simonyan and Zisserman, 2014): stacks of 3x3 convolutions, configurations A, B, D, E.

Legend: N batch, H/W height/width, C channels; "M" in a configuration is a 2x2 max pool.
"""

from __future__ import annotations

import numpy as np

from cnnlab import nn
from cnnlab.models._common import Builder, FeaturesClassifier, walk_hw

__all__ = [
    "VGG",
    "vgg",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


class VGG(FeaturesClassifier):
    """VGG: ``features`` (3x3 convolutions and max pools) -> Flatten -> ``classifier``."""


def vgg(depth, num_classes=1000, *, batch_norm=False, in_channels=3, input_size=224,
        width=1.0, hidden=4096, dropout=0.5, seed=None, init=None,
        dtype=np.float32) -> VGG:
    """VGG-``depth`` (11, 13, 16 or 19) with torchvision's layout and names.

    ``features``: for each number c of the configuration a 3x3 convolution (padding 1) to c
    channels, [batch norm,] ReLU; for each "M" a 2x2 max pool, stride 2. ``classifier``:
    0 dense C*H'*W' -> 4096, 1 ReLU, 2 dropout, 3 dense 4096 -> 4096, 4 ReLU, 5 dropout,
    6 dense 4096 -> num_classes. For 224x224x3 and 1000 classes VGG-16 has 138,357,544
    parameters (VGG-11 132,863,336; VGG-13 133,047,848; VGG-19 143,667,240). torchvision's
    adaptive pool to 7x7 (the identity at 224x224) is left out: the first dense layer takes
    the map that ``input_size`` gives.

    Args:
        batch_norm: a BatchNorm2D after every convolution (torchvision's ``vgg16_bn``).
        width: multiplies the convolutions' channels; hidden: the dense layers' width;
        dropout: the rate of the two dropout layers (others: see :mod:`cnnlab.models`).

    Shape:
        (N, H, W, in_channels) -> (N, num_classes); H and W at least 32.

    >>> import numpy as np, cnnlab as cl
    >>> model = vgg(11, 10, input_size=32, width=0.125, hidden=32, seed=0)
    >>> model(cl.tensor(np.zeros((2, 32, 32, 3), np.float32))).shape
    (2, 10)
    """
    where = f"vgg{depth}"
    if depth not in CONFIGS:
        raise ValueError(f"vgg: depth must be one of {sorted(CONFIGS)}; received depth={depth!r}")
    b = Builder(where, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                width=width, init=init, seed=seed, dtype=dtype)
    layers = []
    channels = b.in_channels
    for item in CONFIGS[depth]:
        if item == "M":
            layers.append(nn.MaxPool2D(2, stride=2))
            continue
        out = b.ch(item)
        layers.append(b.conv(channels, out, 3, padding=1))
        if batch_norm:
            layers.append(b.bn(out))
        layers.append(nn.ReLU())
        channels = out
    features = nn.Sequential(*layers)
    h, w = walk_hw(features, b.input_hw, where, "features")
    classifier = nn.Sequential(
        b.dense(channels * h * w, hidden),
        nn.ReLU(),
        b.dropout(dropout),
        b.dense(hidden, hidden),
        nn.ReLU(),
        b.dropout(dropout),
        b.dense(hidden, b.num_classes),
    )
    model = VGG(features, classifier)
    arch = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"
    return b.finish(model, arch, "classifier.6", {"classifier.0": (h, w, channels)})


def _variant(depth: int, batch_norm: bool):
    def build(num_classes=1000, **kw) -> VGG:
        return vgg(depth, num_classes, batch_norm=batch_norm, **kw)

    build.__name__ = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"
    bn = " with batch norm after every convolution" if batch_norm else ""
    build.__doc__ = (
        f"VGG-{depth}{bn}: ``vgg({depth}, num_classes, batch_norm={batch_norm}, **kw)``; see "
        f":func:`vgg`.\n\n    Shape:\n        (N, H, W, in_channels) -> (N, num_classes).\n"
    )
    return build


vgg11 = _variant(11, False)
vgg13 = _variant(13, False)
vgg16 = _variant(16, False)
vgg19 = _variant(19, False)
vgg11_bn = _variant(11, True)
vgg13_bn = _variant(13, True)
vgg16_bn = _variant(16, True)
vgg19_bn = _variant(19, True)
