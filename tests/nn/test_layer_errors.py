"""Bad constructor arguments and bad inputs: errors that name the layer, the rule and what was
received (messages pinned)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import nn

CONSTRUCTOR_ERRORS = [
    (lambda: nn.Conv2D(0, 4, 3), ValueError,
     "Conv2D: in_channels must be a positive int; received in_channels=0"),
    (lambda: nn.Conv2D(3, 4.0, 3), ValueError,
     "Conv2D: out_channels must be a positive int; received out_channels=4.0"),
    (lambda: nn.Conv2D(3, 4, 0), ValueError,
     "Conv2D: kernel_size must be >= 1; received kernel_size=0"),
    (lambda: nn.Conv2D(3, 4, (3, 3, 3)), ValueError,
     "Conv2D: kernel_size must be an int or a pair of ints; received (3, 3, 3)"),
    (lambda: nn.Conv2D(3, 4, 3, stride=0), ValueError,
     "Conv2D: stride must be >= 1; received stride=0"),
    (lambda: nn.Conv2D(3, 4, 3, dilation=(1, 0)), ValueError,
     "Conv2D: dilation must be >= 1; received dilation=(1, 0)"),
    (lambda: nn.Conv2D(3, 4, 3, padding="half"), ValueError,
     "Conv2D: padding must be 'valid', 'same', 'full', an int or a pair of ints; "
     "received 'half'"),
    (lambda: nn.Conv2D(3, 4, 3, padding=-1), ValueError,
     "Conv2D: padding must be >= 0; received padding=-1"),
    (lambda: nn.Conv2D(3, 4, 3, groups=2), ValueError,
     "Conv2D: groups must divide both in_channels and out_channels; received in_channels=3, "
     "out_channels=4, groups=2"),
    (lambda: nn.Conv2D(3, 4, 3, seed="a"), TypeError,
     "Conv2D: seed must be an int, None or a numpy.random.Generator; received 'a'"),
    (lambda: nn.Dense(0, 3), ValueError,
     "Dense: in_features must be a positive int; received in_features=0"),
    (lambda: nn.MaxPool2D(0), ValueError, "MaxPool2D: size must be >= 1; received size=0"),
    (lambda: nn.MaxPool2D(2, stride=-1), ValueError,
     "MaxPool2D: stride must be >= 1; received stride=-1"),
    (lambda: nn.AvgPool2D(2, padding="full"), ValueError,
     "AvgPool2D: padding must be 'valid', 'same', an int or a pair of ints; received 'full'"),
    (lambda: nn.MaxPool2D(2, padding=2), ValueError,
     "MaxPool2D: padding must be at most half the window on each side (padding <= size // 2, "
     "as in PyTorch); received padding=2 with size=2"),
    (lambda: nn.LPPool2D(0.5, 2), ValueError,
     "LPPool2D: p must be a finite number >= 1; received p=0.5"),
    (lambda: nn.LeakyReLU(float("nan")), ValueError,
     "LeakyReLU: slope must be a finite number; received nan"),
    (lambda: nn.Softmax(axis=1.5), TypeError, "Softmax: axis must be an int; received 1.5"),
    (lambda: nn.Flatten("1"), TypeError, "Flatten: start_axis must be an int; received '1'"),
    (lambda: nn.ZeroPad2D((1, -1)), ValueError,
     "ZeroPad2D: padding must be an int, a pair (ph, pw) or ((top, bottom), (left, right)) of "
     "non-negative ints; received (1, -1)"),
    (lambda: nn.Dropout(1.0), ValueError, "Dropout: rate must be in [0, 1); received rate=1.0"),
    (lambda: nn.Dropout(-0.1), ValueError,
     "Dropout: rate must be in [0, 1); received rate=-0.1"),
    (lambda: nn.BatchNorm2D(0), ValueError,
     "BatchNorm2D: channels must be a positive int; received channels=0"),
    (lambda: nn.BatchNorm1D(-2), ValueError,
     "BatchNorm1D: features must be a positive int; received features=-2"),
    (lambda: nn.BatchNorm2D(4, momentum=1.5), ValueError,
     "BatchNorm2D: momentum must be in [0, 1]; received momentum=1.5"),
    (lambda: nn.BatchNorm2D(4, eps=0), ValueError,
     "BatchNorm2D: eps must be a positive number; received eps=0"),
    (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError,
     "Sequential: item 1 must be a Module (a layer); received str"),
    (lambda: nn.Residual(None), TypeError,
     "Residual: item 'block' must be a Module (a layer); received NoneType"),
    (lambda: nn.Concat(), ValueError, "Concat: needs at least one branch; received none"),
]


@pytest.mark.parametrize("make,kind,message", CONSTRUCTOR_ERRORS,
                         ids=[m for _, _, m in CONSTRUCTOR_ERRORS])
def test_constructor_errors(make, kind, message):
    with pytest.raises(kind, match=re.escape(message)):
        make()


def x(*shape):
    return cl.tensor(np.zeros(shape, np.float32))


FORWARD_ERRORS = [
    (nn.Conv2D(3, 4, 3), x(2, 8, 8, 1),
     "Conv2D: expected 3 channels on the last axis of (N, H, W, C); received shape (2, 8, 8, 1)"),
    (nn.Conv2D(3, 4, 3), x(8, 8, 3),
     "Conv2D: expected a 4-D input (N, H, W, C); received shape (8, 8, 3)"),
    (nn.Dense(16, 4), x(2, 2, 2, 4),
     "Dense: expected a 2-D input (N, 16); received shape (2, 2, 2, 4) (put a Flatten() or "
     "GlobalAvgPool2D() before it)"),
    (nn.Dense(16, 4), x(2, 15),
     "Dense: expected 16 channels on the last axis of (N, features); received shape (2, 15)"),
    (nn.MaxPool2D(2), x(2, 4),
     "MaxPool2D: expected a 4-D input (N, H, W, C); received shape (2, 4)"),
    (nn.BatchNorm2D(8), x(2, 4, 4, 3),
     "BatchNorm2D: expected 8 channels on the last axis of (N, H, W, C); received shape "
     "(2, 4, 4, 3)"),
    (nn.BatchNorm1D(8), x(2, 4, 4, 8),
     "BatchNorm1D: expected a 2-D input (N, F); received shape (2, 4, 4, 8)"),
    (nn.ZeroPad2D(1), x(4, 4, 1), "ZeroPad2D: expected a 4-D input (N, H, W, C); received "
                                  "shape (4, 4, 1)"),
]


@pytest.mark.parametrize("layer,inp,message", FORWARD_ERRORS, ids=[m for _, _, m in FORWARD_ERRORS])
def test_forward_errors_name_the_layer(layer, inp, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(inp)


def test_module_without_forward():
    class Empty(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match=r"Empty: forward\(\) is not written"):
        Empty()(x(1))
