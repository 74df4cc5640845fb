"""The functional API: every primitive as a function of tensors.

>>> import numpy as np, cnnlab as cl
>>> from cnnlab import functional as F
>>> x = cl.tensor(np.zeros((2, 28, 28, 1)))
>>> w = cl.tensor(np.zeros((5, 5, 1, 6)))
>>> F.conv2d(x, w, padding="same").shape
(2, 28, 28, 6)
"""

from cnnlab.ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from cnnlab.ops.conv import conv2d
from cnnlab.ops.dropout import dropout
from cnnlab.ops.elementwise import exp, log, sqrt
from cnnlab.ops.linear import linear, matmul
from cnnlab.ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss
from cnnlab.ops.normalization import batch_norm
from cnnlab.ops.pool import avg_pool2d, global_avg_pool2d, lp_pool2d, max_pool2d
from cnnlab.ops.reduce import max, mean, sum  # noqa: A004 - mirrors numpy
from cnnlab.ops.shape import concat, flatten, pad, reshape, stack, transpose

__all__ = [
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "lp_pool2d",
    "global_avg_pool2d",
    "linear",
    "matmul",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "dropout",
    "batch_norm",
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "exp",
    "log",
    "sqrt",
    "sum",
    "mean",
    "max",
    "reshape",
    "transpose",
    "flatten",
    "concat",
    "stack",
    "pad",
]
