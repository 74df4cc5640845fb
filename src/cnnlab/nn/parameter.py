"""Parameter: a tensor that a Module owns and an optimizer updates."""

from __future__ import annotations

import numpy as np

from cnnlab.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A trainable tensor (``requires_grad=True`` unless frozen).

    Args:
        data: the initial values (an ndarray; float32 by default).
        requires_grad: False for a frozen parameter.
        regularize: whether L2 regularization / weight decay applies to it. Layers set False for
            biases and batch-norm scale and shift, so the penalty covers weights only (the course
            notes' lambda/(2m) * sum ||W||_F^2). None means: True for tensors of 2 or more axes.
    """

    __slots__ = ("regularize",)

    def __init__(self, data, requires_grad: bool = True, regularize: bool | None = None):
        array = np.asarray(data.data if isinstance(data, Tensor) else data)
        if array.dtype.kind != "f":
            array = array.astype(np.float32)
        super().__init__(array, requires_grad=requires_grad)
        self.regularize = array.ndim >= 2 if regularize is None else bool(regularize)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}" + (
            ")" if self.requires_grad else ", frozen)"
        )
