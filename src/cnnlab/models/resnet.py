"""ResNet for ImageNet (He et al., 2015): basic and bottleneck residual blocks.

Legend: N batch, H/W height/width, C channels. Layout and names follow torchvision
(``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ``fc.weight``), the bottleneck
is "v1.5" (the stride on the 3x3 convolution, as torchvision), every convolution is bias-free
and followed by batch norm.
"""

from __future__ import annotations

import numpy as np

from cnnlab import functional as F
from cnnlab import nn
from cnnlab.models._common import Builder

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a skip connection.

    y = relu(bn2(conv2(relu(bn1(conv1(x))))) + s(x)), s the identity or ``downsample`` (a 1x1
    strided convolution and batch norm) when the stride or the channels change. Backward:
    the gradient of y reaches x along both paths and the two are added (the autograd engine
    sums them). ``builder`` (private) carries the model's Generator, initializer and dtype.

    Shape:
        (N, H, W, C_in) -> (N, H', W', planes), H' = floor((H - 1) / stride) + 1.

    >>> import numpy as np, cnnlab as cl
    >>> BasicBlock(8, 16, stride=2)(cl.tensor(np.zeros((1, 8, 8, 8), np.float32))).shape
    (1, 4, 4, 16)
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, builder=None):
        super().__init__()
        b = builder or Builder(type(self).__name__, num_classes=1, in_channels=in_channels,
                               input_size=1)
        self.conv1 = b.conv(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = b.bn(planes)
        self.conv2 = b.conv(planes, planes, 3, padding=1, bias=False)
        self.bn2 = b.bn(planes)
        self.downsample = _downsample(b, in_channels, planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to 4 * planes, and a skip connection.

    y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + s(x)), s as in
    :class:`BasicBlock`.

    Shape:
        (N, H, W, C_in) -> (N, H', W', 4 * planes), H' = floor((H - 1) / stride) + 1.

    >>> import numpy as np, cnnlab as cl
    >>> Bottleneck(8, 4, stride=2)(cl.tensor(np.zeros((1, 8, 8, 8), np.float32))).shape
    (1, 4, 4, 16)
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, builder=None):
        super().__init__()
        b = builder or Builder(type(self).__name__, num_classes=1, in_channels=in_channels,
                               input_size=1)
        out = planes * self.expansion
        self.conv1 = b.conv(in_channels, planes, 1, bias=False)
        self.bn1 = b.bn(planes)
        self.conv2 = b.conv(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = b.bn(planes)
        self.conv3 = b.conv(planes, out, 1, bias=False)
        self.bn3 = b.bn(out)
        self.downsample = _downsample(b, in_channels, out, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def _downsample(b: Builder, in_channels: int, out_channels: int, stride: int):
    """Projection shortcut (1x1 conv with stride, batch norm) when the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        b.conv(in_channels, out_channels, 1, stride=stride, bias=False),
        b.bn(out_channels),
    )


class ResNet(nn.Module):
    """conv1 7x7/2 -> bn1 -> ReLU -> maxpool 3/2 -> layer1..layer4 -> global average -> fc."""

    def __init__(self, b: Builder, block, layers, base: int):
        super().__init__()
        self.conv1 = b.conv(b.in_channels, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = b.bn(base)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(3, stride=2, padding=1)
        channels = base
        stages = []
        for i, blocks in enumerate(layers):
            planes = base * 2**i
            stride = 1 if i == 0 else 2
            seq = nn.Sequential()
            for j in range(blocks):
                seq.append(block(channels, planes, stride if j == 0 else 1, builder=b))
                channels = planes * block.expansion
            stages.append(seq)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.GlobalAvgPool2D()
        self.fc = b.dense(channels, b.num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x))


_SPECS = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def resnet(depth, num_classes=1000, *, in_channels=3, input_size=224, width=1.0, seed=None,
           init=None, dtype=np.float32) -> ResNet:
    """ResNet-``depth`` (18, 34: basic blocks; 50, 101, 152: bottlenecks) for ImageNet-size images.

    Stages of 64, 128, 256, 512 planes (times ``width``), the first block of stages 2-4 with
    stride 2. For 224x224x3 and 1000 classes: ResNet-18 11,689,512 parameters, ResNet-34
    21,797,672, ResNet-50 25,557,032. The global average pool makes the network accept any
    input size (from 32x32 the last map is at least 1x1 without padding effects);
    ``input_size`` is recorded as the model's ``input_shape`` (for ``nn.summary``). Batch norm
    uses eps 1e-5, as torchvision.

    Shape:
        (N, H, W, in_channels) -> (N, num_classes).

    >>> import numpy as np, cnnlab as cl
    >>> model = resnet(18, 10, width=0.125, seed=0)
    >>> model(cl.tensor(np.zeros((2, 32, 32, 3), np.float32))).shape
    (2, 10)
    """
    if depth not in _SPECS:
        raise ValueError(
            f"resnet: depth must be one of {sorted(_SPECS)}; received depth={depth!r} "
            "(resnet20/32/44/56/110 are the CIFAR networks: cnnlab.models.resnet_cifar)"
        )
    where = f"resnet{depth}"
    b = Builder(where, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                width=width, init=init, seed=seed, dtype=dtype)
    block, layers = _SPECS[depth]
    model = ResNet(b, block, layers, b.ch(64))
    return b.finish(model, where, "fc")


def _variant(depth: int):
    def build(num_classes=1000, **kw) -> ResNet:
        return resnet(depth, num_classes, **kw)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = (
        f"ResNet-{depth}: ``resnet({depth}, num_classes, **kw)``; see :func:`resnet`.\n\n"
        f"    Shape:\n        (N, H, W, in_channels) -> (N, num_classes).\n"
    )
    return build


resnet18 = _variant(18)
resnet34 = _variant(34)
resnet50 = _variant(50)
resnet101 = _variant(101)
resnet152 = _variant(152)
