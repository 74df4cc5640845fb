"""Layers and networks: Module, Parameter, containers, layers, initializers and summary.

Layers are thin: each holds its settings and parameters and calls the function of the same
name in :mod:`cnnlab.functional`, where the forward and backward math lives.

Precision: every layer with parameters takes ``dtype=np.float32`` (the default) or
``np.float64``; a whole model converts in place with ``model.astype(dtype)``, ``.double()``
(gradient checks) or ``.float()``.

>>> import numpy as np, cnnlab as cl
>>> from cnnlab import nn
>>> lenet = nn.Sequential(
...     nn.Conv2D(1, 6, 5, padding="same", seed=0), nn.ReLU(), nn.MaxPool2D(2),
...     nn.Conv2D(6, 16, 5, seed=0), nn.ReLU(), nn.MaxPool2D(2),
...     nn.Flatten(), nn.Dense(400, 120, seed=0), nn.ReLU(), nn.Dense(120, 10, seed=0))
>>> lenet(cl.tensor(np.zeros((2, 28, 28, 1), np.float32))).shape
(2, 10)
"""

from cnnlab.nn import init
from cnnlab.nn.activation import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.nn.containers import Concat, ModuleList, Residual, Sequential
from cnnlab.nn.conv import Conv2D
from cnnlab.nn.dropout import Dropout
from cnnlab.nn.inference import Predictor
from cnnlab.nn.linear import Dense
from cnnlab.nn.module import LoadResult, Module
from cnnlab.nn.normalization import BatchNorm1D, BatchNorm2D
from cnnlab.nn.parameter import Parameter
from cnnlab.nn.pool import AvgPool2D, GlobalAvgPool2D, LPPool2D, MaxPool2D
from cnnlab.nn.shape import Flatten, ZeroPad2D
from cnnlab.nn.summary import Summary, SummaryRow, summary

__all__ = [
    "Module",
    "Parameter",
    "LoadResult",
    "Predictor",
    "Sequential",
    "ModuleList",
    "Residual",
    "Concat",
    "Conv2D",
    "Dense",
    "MaxPool2D",
    "AvgPool2D",
    "LPPool2D",
    "GlobalAvgPool2D",
    "Flatten",
    "ZeroPad2D",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Dropout",
    "BatchNorm2D",
    "BatchNorm1D",
    "init",
    "summary",
    "Summary",
    "SummaryRow",
]
