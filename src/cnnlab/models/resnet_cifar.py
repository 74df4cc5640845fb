"""The CIFAR ResNets of He et al. (2015, section 4.2): ResNet-20, 32, 44, 56 and 110.

Legend: N batch, H/W height/width, C channels. 6n + 2 layers: a 3x3 convolution to 16
channels, three stages of n basic blocks on 16, 32 and 64 channels (maps 32, 16 and 8 wide),
global average pooling and a dense layer. The shortcuts are the paper's option A: when a block
halves the map and doubles the channels, the shortcut takes every other pixel and pads the
new channels with zeros, adding no parameters.
"""

from __future__ import annotations

import numpy as np

import cnnlab
from cnnlab import nn
from cnnlab.models._common import Builder, check_positive_int
from cnnlab.models.resnet import BasicBlock

__all__ = [
    "CifarResNet",
    "ShortcutA",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet_cifar",
]


class ShortcutA(nn.Module):
    """Option-A shortcut: strided identity with zero-padded channels (no parameters).

    y[n, i, j, c] = x[n, s i, s j, c - p] for p <= c < p + C_in, and 0 for the other channels,
    with p = (C_out - C_in) // 2 zero channels before and the rest after (the layout of the
    widely used PyTorch reference, so imported weights see the same features).

    Gradient: gx[n, s i, s j, c] = gy[n, i, j, c + p]; gx is 0 at the pixels the stride skips.

    Shape:
        (N, H, W, C_in) -> (N, ceil(H / s), ceil(W / s), C_out).

    >>> import numpy as np, cnnlab as cl
    >>> ShortcutA(16, 32, stride=2)(cl.tensor(np.zeros((1, 32, 32, 16), np.float32))).shape
    (1, 16, 16, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        where = "ShortcutA"
        self.in_channels = check_positive_int(in_channels, "in_channels", where)
        self.out_channels = check_positive_int(out_channels, "out_channels", where)
        self.stride = check_positive_int(stride, "stride", where)
        if out_channels < in_channels:
            raise ValueError(
                f"{where}: out_channels must be at least in_channels (channels are padded, "
                f"never dropped); received in_channels={in_channels}, "
                f"out_channels={out_channels}"
            )

    def forward(self, x):
        if len(x.shape) != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"ShortcutA: expected an (N, H, W, {self.in_channels}) input; "
                f"received shape {tuple(x.shape)}"
            )
        s = self.stride
        if s > 1:
            x = x[:, ::s, ::s, :]  # (N, ceil(H/s), ceil(W/s), C_in)
        extra = self.out_channels - self.in_channels
        if extra:
            before = extra // 2
            x = cnnlab.pad(x, ((0, 0), (0, 0), (0, 0), (before, extra - before)))
        return x  # (N, ceil(H/s), ceil(W/s), C_out)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class CifarResNet(nn.Module):
    """conv1 3x3 -> bn1 -> ReLU -> layer1..layer3 -> global average -> fc."""

    def __init__(self, b: Builder, n: int, base: int, shortcut: str):
        super().__init__()
        self.conv1 = b.conv(b.in_channels, base, 3, padding=1, bias=False)
        self.bn1 = b.bn(base)
        self.relu = nn.ReLU()
        channels = base
        stages = []
        for i in range(3):
            planes = base * 2**i
            seq = nn.Sequential()
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                block = BasicBlock(channels, planes, stride, builder=b)
                if shortcut == "A" and block.downsample is not None:
                    block.downsample = ShortcutA(channels, planes, stride)
                seq.append(block)
                channels = planes
            stages.append(seq)
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.GlobalAvgPool2D()
        self.fc = b.dense(channels, b.num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x))


def resnet_cifar(depth, num_classes=10, *, shortcut="A", in_channels=3, input_size=32,
                 width=1.0, seed=None, init=None, dtype=np.float32) -> CifarResNet:
    """The CIFAR ResNet with ``depth`` = 6n + 2 layers (20, 32, 44, 56, 110, ...).

    Blocks are :class:`~cnnlab.models.resnet.BasicBlock` (3x3 convolutions without bias, batch
    norm, ReLU after the addition); the first block of stages 2 and 3 has stride 2. With the
    option-A shortcut (default) the network's parameters are its convolutions, batch norms and
    the 64 -> num_classes head: ResNet-20 for 10 classes has 269,722. ``shortcut='B'`` uses
    1x1 projections (with batch norm) where the shape changes instead.

    Args:
        depth: 6n + 2 with n >= 1; shortcut: 'A' or 'B'; width: multiplies 16, 32, 64
        (others: see :mod:`cnnlab.models`).

    Shape:
        (N, H, W, in_channels) -> (N, num_classes); ``input_size`` (32) is recorded for
        ``nn.summary``, the global average pool accepts any size.

    >>> import numpy as np, cnnlab as cl
    >>> model = resnet_cifar(20, seed=0)
    >>> model(cl.tensor(np.zeros((2, 32, 32, 3), np.float32))).shape
    (2, 10)
    """
    where = f"resnet{depth}"
    depth = check_positive_int(depth, "depth", "resnet_cifar")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"resnet_cifar: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110); "
            f"received depth={depth}"
        )
    if shortcut not in ("A", "B"):
        raise ValueError(f"{where}: shortcut must be 'A' or 'B'; received shortcut={shortcut!r}")
    b = Builder(where, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                width=width, init=init, seed=seed, dtype=dtype)
    model = CifarResNet(b, (depth - 2) // 6, b.ch(16), shortcut)
    model.shortcut = shortcut
    return b.finish(model, where, "fc")


def _variant(depth: int):
    def build(num_classes=10, **kw) -> CifarResNet:
        return resnet_cifar(depth, num_classes, **kw)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = (
        f"ResNet-{depth} for CIFAR (n = {(depth - 2) // 6} blocks a stage): "
        f"``resnet_cifar({depth}, num_classes, **kw)``; see :func:`resnet_cifar`.\n\n"
        f"    Shape:\n        (N, 32, 32, 3) -> (N, num_classes).\n"
    )
    return build


resnet20 = _variant(20)
resnet32 = _variant(32)
resnet44 = _variant(44)
resnet56 = _variant(56)
resnet110 = _variant(110)
