"""Batch normalization layers: BatchNorm2D (per channel of images) and BatchNorm1D (features).

Legend: N batch, H/W height/width, C channels (or features).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from cnnlab import functional as F
from cnnlab.nn._util import check_input, float_dtype, positive_int
from cnnlab.nn.module import Module
from cnnlab.nn.parameter import Parameter

__all__ = ["BatchNorm2D", "BatchNorm1D"]


class _BatchNorm(Module):
    _name = "BatchNorm"
    _ndim = 0
    _layout = ""

    def __init__(self, channels, momentum=0.9, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.channels = positive_int(channels, "channels", self._name)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not (
            0 <= momentum <= 1
        ):
            raise ValueError(
                f"{self._name}: momentum must be in [0, 1]; received momentum={momentum!r}"
            )
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (
            eps > 0 and math.isfinite(eps)
        ):
            raise ValueError(f"{self._name}: eps must be a positive number; received eps={eps!r}")
        self.momentum = float(momentum)
        self.eps = float(eps)
        dtype = float_dtype(dtype, self._name)
        self.gamma = Parameter(np.ones(self.channels, dtype), regularize=False)
        self.beta = Parameter(np.zeros(self.channels, dtype), regularize=False)
        self.register_buffer("running_mean", np.zeros(self.channels, dtype))
        self.register_buffer("running_var", np.ones(self.channels, dtype))

    def forward(self, x):
        check_input(x, self._name, self._ndim, self._layout, self.channels)
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        parts = [f"{self.channels}"]
        if self.momentum != 0.9:
            parts.append(f"momentum={self.momentum!r}")
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps!r}")
        if self.gamma.dtype != np.float32:
            parts.append(f"dtype={self.gamma.dtype}")
        return ", ".join(parts)


class BatchNorm2D(_BatchNorm):
    """Batch normalization of each channel of (N, H, W, C) images.

    Training: mu_c and var_c are the mean and (biased) variance of channel c over N, H and W;
    Y = gamma * (X - mu) / sqrt(var + eps) + beta, and the running statistics move toward the
    batch's: running = momentum * running + (1 - momentum) * batch (Keras's convention;
    PyTorch's momentum is 1 minus ours). Eval mode uses the running statistics instead, so the
    output of one image does not depend on the others. The gradients are in
    :func:`cnnlab.functional.batch_norm`.

    Args:
        channels: C.  momentum: in [0, 1] (default 0.9).  eps: > 0 (default 1e-5).
        dtype: float32 (default) or float64.

    Attributes:
        gamma (ones), beta (zeros): Parameters (C,), not L2-regularized.
        running_mean (zeros), running_var (ones): buffers (C,), saved in the state_dict.

    Shape: (N, H, W, C) -> (N, H, W, C).

    >>> import numpy as np, cnnlab as cl
    >>> BatchNorm2D(16)(cl.tensor(np.ones((4, 8, 8, 16), np.float32))).shape
    (4, 8, 8, 16)
    """

    _name = "BatchNorm2D"
    _ndim = 4
    _layout = "(N, H, W, C)"


class BatchNorm1D(_BatchNorm):
    """Batch normalization of each feature of (N, F) inputs (after a Dense layer).

    Same as :class:`BatchNorm2D` with the statistics taken over the batch axis only.

    Shape: (N, F) -> (N, F).

    >>> import numpy as np, cnnlab as cl
    >>> BatchNorm1D(10)(cl.tensor(np.ones((4, 10), np.float32))).shape
    (4, 10)
    """

    _name = "BatchNorm1D"
    _ndim = 2
    _layout = "(N, F)"

    def __init__(self, features, momentum=0.9, eps=1e-5, dtype=np.float32):
        positive_int(features, "features", self._name)
        super().__init__(features, momentum, eps, dtype)
