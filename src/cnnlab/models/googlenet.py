"""GoogLeNet (Szegedy et al., 2014): Inception v1 modules with 1x1 reductions.

Legend: N batch, H/W height/width, C channels. Two variants share one layout and torchvision's
names (``conv1.conv.weight``, ``inception3a.branch2.1.conv.weight``, ``fc.weight``):

* ``'paper'`` (default): as in the paper's table 1: convolutions with biases and ReLU, no
  batch norm, 5x5 convolutions in the third branch, a 3x3/2 max pool before inception 5a,
  dropout 0.4; 6,998,552 parameters for 1000 classes (auxiliary heads off);
* ``'torchvision'``: torchvision's GoogLeNet, for weight import: bias-free convolutions each
  followed by batch norm (eps 0.001), a 3x3 convolution in the "5x5" branch, a 2x2/2 max pool
  before inception 5a, dropout 0.2; 6,624,904 parameters.

The local response normalizations of the paper are left out (as in torchvision). Max pools
between stages round their output size up (PyTorch's ``ceil_mode``), which gives the paper's
112 -> 56 -> 28 -> 14 -> 7 maps for 224x224 inputs.
"""

from __future__ import annotations

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.models._common import Builder, check_positive_int

__all__ = [
    "AdaptiveAvgPool2D",
    "BasicConv2d",
    "GoogLeNet",
    "Inception",
    "InceptionAux",
    "MaxPool2DCeil",
    "googlenet",
    "googlenet_loss",
]

# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), from table 1 of the paper
_INCEPTION = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def _out_channels(b: Builder, key: str) -> int:
    """Channels out of Inception module ``key``: 1x1 + 3x3 + 5x5 + pool projection."""
    spec = _INCEPTION[key]
    return sum(b.ch(spec[i]) for i in (1, 3, 5, 6))


class MaxPool2DCeil(nn.Module):
    """Max pooling whose output size rounds up (PyTorch's ``ceil_mode=True``).

    OH = ceil((H + 2p - K) / s) + 1, less one if the last window would start past the input
    and its left padding (the PyTorch rule). The extra bottom/right rows needed are padded
    with -inf, so they never win; forward and gradient are then those of
    :func:`cnnlab.functional.max_pool2d` (the gradient of each window goes to its maximum).

    Shape:
        (N, H, W, C) -> (N, OH, OW, C).

    >>> import numpy as np, cnnlab as cl
    >>> MaxPool2DCeil(3, 2)(cl.tensor(np.zeros((1, 112, 112, 4), np.float32))).shape
    (1, 56, 56, 4)
    """

    def __init__(self, size: int, stride: int, padding: int = 0):
        super().__init__()
        self.size = check_positive_int(size, "size", "MaxPool2DCeil")
        self.stride = check_positive_int(stride, "stride", "MaxPool2DCeil")
        if isinstance(padding, bool) or not isinstance(padding, int) or not (
            0 <= padding <= size // 2
        ):
            raise ValueError(
                f"MaxPool2DCeil: padding must be an int in [0, size // 2]; received "
                f"padding={padding!r} with size={size}"
            )
        self.padding = padding

    def _out(self, n: int) -> int:
        k, s, p = self.size, self.stride, self.padding
        out = -(-(n + 2 * p - k) // s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
        return out

    def forward(self, x):
        if len(x.shape) != 4:
            raise ValueError(
                f"MaxPool2DCeil: expected a 4-D input (N, H, W, C); received shape "
                f"{tuple(x.shape)}"
            )
        _, h, w, _ = x.shape
        k, s, p = self.size, self.stride, self.padding
        oh, ow = self._out(h), self._out(w)
        if min(oh, ow) < 1:
            raise ValueError(
                f"MaxPool2DCeil: the input {h}x{w} is too small for the {k}x{k} window with "
                f"stride {s} and padding {p}; received shape {tuple(x.shape)}"
            )
        # rows and columns after the input so that the last window fits: (O - 1) s + K in all
        after_h, after_w = max((oh - 1) * s + k - h - p, 0), max((ow - 1) * s + k - w - p, 0)
        widths = ((0, 0), (p, after_h), (p, after_w), (0, 0))
        if any(b or a for b, a in widths):
            x = cnnlab.pad(x, widths, value=-np.inf)  # (N, (OH-1) s + K, (OW-1) s + K, C)
        return F.max_pool2d(x, self.size, stride=self.stride)

    def _window(self, in_shape):
        return (self.size, self.size), (self.stride, self.stride)

    def extra_repr(self):
        pad = f", padding={self.padding}" if self.padding else ""
        return f"size={self.size}, stride={self.stride}{pad}"


class AdaptiveAvgPool2D(nn.Module):
    """Average pooling to a fixed output size (PyTorch's ``adaptive_avg_pool2d``).

    Output cell (i, j) averages rows floor(i H / OH) .. ceil((i + 1) H / OH) - 1 and likewise
    columns; when OH divides H (and OW divides W) this is average pooling with window and
    stride H / OH. Gradient: each output cell's gradient is spread equally over its block.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C).

    >>> import numpy as np, cnnlab as cl
    >>> AdaptiveAvgPool2D(4)(cl.tensor(np.zeros((1, 14, 14, 8), np.float32))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, output_size):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(
            check_positive_int(n, "output_size", "AdaptiveAvgPool2D") for n in output_size
        )

    def forward(self, x):
        if len(x.shape) != 4:
            raise ValueError(
                f"AdaptiveAvgPool2D: expected a 4-D input (N, H, W, C); received shape "
                f"{tuple(x.shape)}"
            )
        n, h, w, c = x.shape
        oh, ow = self.output_size
        if h % oh == 0 and w % ow == 0:
            return F.avg_pool2d(x, (h // oh, w // ow))
        cells = []
        for i in range(oh):
            r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            for j in range(ow):
                c0, c1 = (j * w) // ow, -(-((j + 1) * w) // ow)
                cells.append(x[:, r0:r1, c0:c1, :].mean(axis=(1, 2)))  # (N, C)
        return F.stack(cells, axis=1).reshape(n, oh, ow, c)  # (N, OH*OW, C) -> (N, OH, OW, C)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class BasicConv2d(nn.Module):
    """conv -> [bn] -> ReLU: y = relu(bn(conv(x))) (torchvision) or relu(conv(x) + b) (paper).

    Shape:
        (N, H, W, C_in) -> (N, OH, OW, C_out), as the convolution.

    >>> import numpy as np, cnnlab as cl
    >>> BasicConv2d(3, 8, 3, padding=1)(cl.tensor(np.zeros((1, 8, 8, 3), np.float32))).shape
    (1, 8, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 batch_norm=False, builder=None):
        super().__init__()
        b = builder or Builder("BasicConv2d", num_classes=1, in_channels=in_channels,
                               input_size=1)
        self.conv = b.conv(in_channels, out_channels, kernel_size, stride=stride,
                           padding=padding, bias=not batch_norm)
        self.bn = b.bn(out_channels, eps=1e-3) if batch_norm else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x)


class Inception(nn.Module):
    """Four parallel branches joined on the channels.

    y = concat(branch1(x), branch2(x), branch3(x), branch4(x)): 1x1; 1x1 reduce -> 3x3;
    1x1 reduce -> 5x5 (3x3 in the torchvision variant); 3x3/1 max pool -> 1x1 projection.
    The gradient of x is the sum of the four branches' gradients.

    Shape:
        (N, H, W, C_in) -> (N, H, W, ch1x1 + ch3x3 + ch5x5 + pool_proj).

    >>> import numpy as np, cnnlab as cl
    >>> m = Inception(192, 64, 96, 128, 16, 32, 32)
    >>> m(cl.tensor(np.zeros((1, 7, 7, 192), np.float32))).shape
    (1, 7, 7, 256)
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                 variant="paper", builder=None):
        super().__init__()
        b = builder or Builder("Inception", num_classes=1, in_channels=in_channels,
                               input_size=1)
        bn = variant == "torchvision"
        k5 = 3 if bn else 5

        def conv(cin, cout, k):
            return BasicConv2d(cin, cout, k, padding=k // 2, batch_norm=bn, builder=b)

        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, k5))
        self.branch4 = nn.Sequential(nn.MaxPool2D(3, stride=1, padding=1),
                                     conv(in_channels, pool_proj, 1))

    def forward(self, x):
        outs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return cnnlab.concat(outs, axis=-1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate map (training only).

    avg pool (paper: 5x5/3; torchvision: adaptive to 4x4) -> 1x1 conv 128 -> flatten ->
    dense 1024 -> ReLU -> dropout 0.7 -> dense num_classes. At 14x14 both pools give 4x4.

    Shape:
        (N, H, W, C_in) -> (N, num_classes).
    """

    def __init__(self, in_channels, num_classes, variant="paper", builder=None):
        super().__init__()
        b = builder or Builder("InceptionAux", num_classes=num_classes,
                               in_channels=in_channels, input_size=1)
        self.pool = AdaptiveAvgPool2D(4) if variant == "torchvision" else nn.AvgPool2D(5, 3)
        c = b.ch(128)
        self.conv = BasicConv2d(in_channels, c, 1, batch_norm=variant == "torchvision",
                                builder=b)
        self.flatten = nn.Flatten()
        self.fc1 = b.dense(c * 16, b.ch(1024))
        self.dropout = b.dropout(0.7)
        self.fc2 = b.dense(b.ch(1024), num_classes)

    def forward(self, x):
        x = self.flatten(self.conv(self.pool(x)))  # (N, 4 * 4 * 128) in H, W, C order
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


# torchvision's transform_input: from ImageNet normalization to the (x - 0.5) / 0.5 one
_TRANSFORM_SCALE = np.array([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5])
_TRANSFORM_SHIFT = np.array([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5])


class GoogLeNet(nn.Module):
    """The GoogLeNet stem, nine Inception modules, global average pool, dropout and fc.

    In training mode with ``aux_logits`` the forward returns ``(logits, aux2, aux1)`` (as
    torchvision; combine them with :func:`googlenet_loss`), otherwise the logits alone.
    """

    def __init__(self, b: Builder, variant: str, aux_logits: bool, dropout: float,
                 transform_input: bool):
        super().__init__()
        bn = variant == "torchvision"
        self.variant = variant
        self.transform_input = transform_input

        def conv(cin, cout, k, stride=1, padding=0):
            return BasicConv2d(cin, cout, k, stride, padding, batch_norm=bn, builder=b)

        c64, c192 = b.ch(64), b.ch(192)
        self.conv1 = conv(b.in_channels, c64, 7, stride=2, padding=3)
        self.maxpool1 = MaxPool2DCeil(3, 2)
        self.conv2 = conv(c64, c64, 1)
        self.conv3 = conv(c64, c192, 3, padding=1)
        self.maxpool2 = MaxPool2DCeil(3, 2)

        def inception(key, previous):
            # the input channels are what the previous layer gives (rounding of a narrowed
            # network may differ from the table's in-channels times width)
            cin = c192 if previous is None else _out_channels(b, previous)
            spec = [b.ch(c) for c in _INCEPTION[key][1:]]
            return Inception(cin, *spec, variant=variant, builder=b)

        self.inception3a = inception("3a", None)
        self.inception3b = inception("3b", "3a")
        self.maxpool3 = MaxPool2DCeil(3, 2)
        self.inception4a = inception("4a", "3b")
        self.inception4b = inception("4b", "4a")
        self.inception4c = inception("4c", "4b")
        self.inception4d = inception("4d", "4c")
        self.inception4e = inception("4e", "4d")
        self.maxpool4 = MaxPool2DCeil(2, 2) if bn else MaxPool2DCeil(3, 2)
        self.inception5a = inception("5a", "4e")
        self.inception5b = inception("5b", "5a")
        if aux_logits:
            self.aux1 = InceptionAux(_out_channels(b, "4a"), b.num_classes, variant, builder=b)
            self.aux2 = InceptionAux(_out_channels(b, "4d"), b.num_classes, variant, builder=b)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.GlobalAvgPool2D()
        self.dropout = b.dropout(dropout)
        self.fc = b.dense(_out_channels(b, "5b"), b.num_classes)

    def forward(self, x):
        if self.transform_input:
            dt = x.dtype
            x = x * _TRANSFORM_SCALE.astype(dt) + _TRANSFORM_SHIFT.astype(dt)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux = self.aux1 is not None and self.training
        aux1 = self.aux1(x) if aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(self.avgpool(x)))
        return (logits, aux2, aux1) if aux else logits


def _map_hw(hw, variant: str, aux_logits: bool) -> tuple[int, int]:
    """(H, W) after the last pool of the network for input (H, W); a ValueError naming the
    first layer that the map is too small for."""
    from cnnlab.ops.geometry import output_size

    def through(name, layer, hw):
        out = tuple(layer._out(n) for n in hw)
        if min(out) < 1:
            raise ValueError(f"the feature map would be {hw[0]}x{hw[1]} before layer {name} "
                             f"({layer.size}x{layer.size} max pool) and empty after it")
        return out

    hw = tuple(output_size(n, 7, 2, (3, 3), 1) for n in hw)  # conv1 7x7/2, padding 3
    hw = through("maxpool1", MaxPool2DCeil(3, 2), hw)
    hw = through("maxpool2", MaxPool2DCeil(3, 2), hw)  # conv2, conv3 keep the size
    hw = through("maxpool3", MaxPool2DCeil(3, 2), hw)
    if aux_logits and variant == "paper":  # the aux heads: 5x5/3 average pool, then a dense
        pooled = tuple((n - 5) // 3 + 1 for n in hw)  # layer that takes a 4x4 map
        if pooled != (4, 4):
            raise ValueError(f"the feature map would be {hw[0]}x{hw[1]} before aux1.pool (5x5/3 "
                             f"average pool), which makes it {max(pooled[0], 0)}x"
                             f"{max(pooled[1], 0)}; the auxiliary heads take 4x4")
    pool4 = MaxPool2DCeil(2, 2) if variant == "torchvision" else MaxPool2DCeil(3, 2)
    return through("maxpool4", pool4, hw)


def _check_input_size(hw, variant: str, aux_logits: bool) -> None:
    """Refuse an input size that leaves a pool with an empty map, naming the smallest that
    works (found by walking the sizes, so it stays true if the stem changes)."""
    try:
        _map_hw(hw, variant, aux_logits)
    except ValueError as e:
        fits = [n for n in range(1, 1025) if _fits(n, variant, aux_logits)]
        if fits[-1] < 1024:  # a window of sizes (the paper's auxiliary heads)
            sizes = f"sizes {fits[0]} to {fits[-1]} work"
        else:
            sizes = f"the smallest is {fits[0]}x{fits[0]}"
        small = "too small" if min(hw) < fits[0] else "not one it takes"
        raise ValueError(f"googlenet: input_size is {small}: {e}; received input_size="
                         f"{hw[0]}x{hw[1]}, {sizes}") from None


def _fits(n: int, variant: str, aux_logits: bool) -> bool:
    try:
        _map_hw((n, n), variant, aux_logits)
    except ValueError:
        return False
    return True


def googlenet(num_classes=1000, *, variant="paper", aux_logits=False, dropout=None,
              transform_input=False, in_channels=3, input_size=224, width=1.0, seed=None,
              init=None, dtype=np.float32) -> GoogLeNet:
    """GoogLeNet (Inception v1); ``variant`` 'paper' (default) or 'torchvision'.

    ::

        conv1 7x7/2 64 -> maxpool 3/2 -> conv2 1x1 64 -> conv3 3x3 192 -> maxpool 3/2
        -> inception 3a, 3b -> maxpool 3/2 -> inception 4a .. 4e -> maxpool
        -> inception 5a, 5b -> global average pool -> dropout -> fc 1024 -> num_classes

    Each Inception module concatenates a 1x1 convolution, a 1x1 reduction then 3x3, a 1x1
    reduction then 5x5 (3x3 in the torchvision variant) and a 3x3 max pool then 1x1
    projection. Parameters for 1000 classes, auxiliary heads off: 6,998,552 ('paper'),
    6,624,904 ('torchvision'). See the module docstring for the differences.

    Args:
        aux_logits: add the two auxiliary classifiers (after inception 4a and 4d); they run in
            training mode only.
        dropout: before fc; default 0.4 ('paper') or 0.2 ('torchvision').
        transform_input: torchvision's re-normalization of ImageNet-normalized RGB inputs,
            needed with its pretrained weights.
        width: multiplies every channel count (others: see :mod:`cnnlab.models`).

    Shape:
        (N, H, W, in_channels) -> (N, num_classes); H and W at least 32 (224 in the paper).

    >>> import numpy as np, cnnlab as cl
    >>> model = googlenet(10, width=0.125, seed=0)
    >>> model(cl.tensor(np.zeros((2, 32, 32, 3), np.float32))).shape
    (2, 10)
    """
    where = "googlenet"
    if variant not in ("paper", "torchvision"):
        raise ValueError(
            f"{where}: variant must be 'paper' or 'torchvision'; received variant={variant!r}"
        )
    if transform_input and in_channels != 3:
        raise ValueError(
            f"{where}: transform_input needs RGB inputs (in_channels=3); received "
            f"in_channels={in_channels}"
        )
    if dropout is None:
        dropout = 0.2 if variant == "torchvision" else 0.4
    b = Builder(where, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                width=width, init=init, seed=seed, dtype=dtype)
    _check_input_size(b.input_hw, variant, bool(aux_logits))
    model = GoogLeNet(b, variant, bool(aux_logits), dropout, bool(transform_input))
    flat = {}
    if aux_logits:  # the aux heads flatten a 4x4 map of 128 (times width) channels
        c = b.ch(128)
        flat = {"aux1.fc1": (4, 4, c), "aux2.fc1": (4, 4, c)}
    return b.finish(model, "googlenet", "fc", flat)


def googlenet_loss(outputs, target, aux_weight=0.3):
    """Cross-entropy of GoogLeNet's outputs, the auxiliary heads weighted as in the paper.

    L = CE(logits, y) + aux_weight * (CE(aux2, y) + CE(aux1, y)) when ``outputs`` is the
    training-mode triple (logits, aux2, aux1); CE(logits, y) for logits alone.
    Use it as ``fit(..., loss=googlenet_loss, metrics=())``.

    Shape:
        outputs: (N, K) or three of them; target: (N,) labels; output () (a scalar).

    >>> import numpy as np, cnnlab as cl
    >>> googlenet_loss(cl.tensor(np.zeros((2, 3))), np.array([0, 2])).shape
    ()
    """
    if isinstance(outputs, tuple):
        logits, aux2, aux1 = outputs
        loss = F.cross_entropy(logits, target)
        return loss + aux_weight * (F.cross_entropy(aux2, target) + F.cross_entropy(aux1, target))
    return F.cross_entropy(outputs, target)
