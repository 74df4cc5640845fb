"""What every zoo builder shares (private): argument checks, a layer factory, shape walking.

Every builder takes the same keywords, checked here:

* ``num_classes``: outputs of the head (int >= 1);
* ``in_channels``: C of the input images; ``input_size``: H = W, or a pair (H, W);
* ``width``: a multiplier of every convolution's channels (1.0 = the paper; 0.25 gives a
  small network of the same shape for quick experiments and tests);
* ``init``: None for the family's default initializer, or one initializer for every weight
  (a name from :mod:`cnnlab.nn.init`, a number or a function); ``'zeros'`` builds a large model
  almost for free (NumPy allocates zero pages lazily), e.g. to count parameters or to load
  weights into;
* ``seed``: an int, a ``numpy.random.Generator`` or None; every layer draws from one Generator
  made from it, in definition order, so the same seed gives the same model;
* ``dtype``: float32 (default) or float64.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab import nn
from cnnlab._validate import as_generator, check_positive_int
from cnnlab.ops.geometry import output_size, resolve_padding

__all__ = ["Builder", "FeaturesClassifier", "check_positive_int", "check_size", "scaled", "walk_hw"]


def check_size(value, where: str) -> tuple[int, int]:
    """``input_size`` as (H, W) from an int or a pair of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(
        f"{where}: input_size must be a positive int or a pair (H, W) of them; "
        f"received input_size={value!r}"
    )


def scaled(channels: int, width: float) -> int:
    """round(channels * width), at least 1: the channel count of a narrowed network."""
    return max(1, int(channels * width + 0.5))


def _check_width(width, where: str) -> float:
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not (
        np.isfinite(width) and width > 0
    ):
        raise ValueError(f"{where}: width must be a positive number; received width={width!r}")
    return float(width)


class Builder:
    """Checked settings plus factories for layers that share one Generator, init and dtype.

    ``conv``/``dense``/``bn``/``dropout`` make the nn layers; ``init`` overrides the layer's
    initializer when the user gave one (``default`` is the family's choice otherwise).
    """

    def __init__(self, where: str, *, num_classes, in_channels, input_size, width=1.0,
                 init=None, seed=None, dtype=np.float32):
        self.where = where
        self.num_classes = check_positive_int(num_classes, "num_classes", where)
        self.in_channels = check_positive_int(in_channels, "in_channels", where)
        self.input_hw = check_size(input_size, where)
        self.width = _check_width(width, where)
        self.init = init
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"{where}: dtype must be float32 or float64; received {dtype!r}")
        self.rng = as_generator(seed, where)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.input_hw, self.in_channels)

    def ch(self, channels: int) -> int:
        """Channels scaled by ``width``."""
        return scaled(channels, self.width)

    def conv(self, cin, cout, k, stride=1, padding=0, bias=True, default="he_normal"):
        init = default if self.init is None else self.init
        return nn.Conv2D(cin, cout, k, stride=stride, padding=padding, bias=bias, init=init,
                         seed=self.rng, dtype=self.dtype)

    def dense(self, fin, fout, default="he_normal"):
        init = default if self.init is None else self.init
        return nn.Dense(fin, fout, init=init, seed=self.rng, dtype=self.dtype)

    def bn(self, channels, eps=1e-5):
        return nn.BatchNorm2D(channels, eps=eps, dtype=self.dtype)

    def dropout(self, rate):
        # each dropout layer gets its own Generator, derived from the shared one
        return nn.Dropout(rate, seed=int(self.rng.integers(2**63)))

    def finish(self, model, arch: str, head: str, flatten_inputs=None):
        """Record what the registry, import and transfer helpers read on a built model."""
        model.arch = arch
        model.num_classes = self.num_classes
        model.input_shape = self.input_shape
        model.head_name = head
        model.flatten_inputs = dict(flatten_inputs or {})
        return model


def _layer_hw(layer, hw, where: str, name: str):
    """Output (H, W) of one layer for input (H, W); unchanged for shape-keeping layers."""
    if isinstance(layer, (nn.Conv2D, nn.MaxPool2D, nn.AvgPool2D)):
        kernel = layer.kernel_size if isinstance(layer, nn.Conv2D) else layer.size
        dilation = layer.dilation if isinstance(layer, nn.Conv2D) else (1, 1)
        pads = resolve_padding(layer.padding, hw, kernel, layer.stride, dilation, where)
        out = tuple(
            output_size(n, k, s, p, d)
            for n, k, s, p, d in zip(hw, kernel, layer.stride, pads, dilation)
        )
    elif isinstance(layer, nn.Sequential):
        out = walk_hw(layer, hw, where, name)
    else:
        out = hw
    if min(out) < 1:
        raise ValueError(
            f"{where}: input_size is too small: the feature map would be {hw[0]}x{hw[1]} "
            f"before layer {name} ({type(layer).__name__}) and empty after it"
        )
    return out


def walk_hw(seq, hw, where: str, prefix: str = "") -> tuple[int, int]:
    """(H, W) at the output of a Sequential of convs, pools and shape-keeping layers."""
    for i, layer in enumerate(seq):
        hw = _layer_hw(layer, hw, where, f"{prefix}.{i}" if prefix else str(i))
    return hw


class FeaturesClassifier(nn.Module):
    """features (convolutions and pools) -> Flatten -> classifier (dense layers).

    The layout of torchvision's AlexNet and VGG (``features.0.weight``,
    ``classifier.0.weight``); the Flatten is channels-last (H, W, C order). The first dense
    layer's size fixes the input size: ``input_shape`` (set by the builders) is checked.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = classifier

    def forward(self, x):
        expected = getattr(self, "input_shape", None)
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            raise ValueError(
                f"{type(self).__name__}: built for inputs (N, {expected[0]}, {expected[1]}, "
                f"{expected[2]}) (its dense layers take the map of that size); received shape "
                f"{tuple(x.shape)} (build it with input_size=(H, W) and in_channels=C to match)"
            )
        return self.classifier(self.flatten(self.features(x)))
