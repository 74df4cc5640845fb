"""Matrix products: matmul and the dense layer's linear map.

Legend: N batch, F_in input features, F_out output features.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops._util import as_tensor, check_float, check_same_dtype, unbroadcast
from cnnlab.ops.parallel import batch_chunks, map_chunks
from cnnlab.tensor import Function, Tensor

__all__ = ["matmul", "linear"]


class MatMul(Function):
    """y = a @ b (NumPy's matmul rules, batched and broadcast).

    ga = gy @ b^T,  gb = a^T @ gy   (summed over broadcast batch axes).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_grad[0]:
            if b.ndim == 1:
                ga = np.multiply.outer(gy, b)
            else:
                gy_ = gy[..., None, :] if a.ndim == 1 else gy
                ga = gy_ @ np.swapaxes(b, -1, -2)
                ga = ga[..., 0, :] if a.ndim == 1 else ga
            ga = unbroadcast(ga, a.shape)
        if self.needs_grad[1]:
            if a.ndim == 1 and b.ndim == 1:
                gb = a * gy  # y = a . b is a scalar
            elif a.ndim == 1:
                gb = a[:, None] * gy[..., None, :]  # (K, 1) * (..., 1, N) -> (..., K, N)
            else:
                gy_ = gy[..., :, None] if b.ndim == 1 else gy
                gb = np.swapaxes(a, -1, -2) @ gy_
                gb = gb[..., 0] if b.ndim == 1 else gb
            gb = unbroadcast(gb, b.shape)
        return ga, gb


class Linear(Function):
    """The dense layer: Z = X W + b.

    Shapes: X (N, F_in), W (F_in, F_out), b (F_out,), Z (N, F_out).
    Backward: dX = dZ W^T,  dW = X^T dZ,  db = sum over the batch of dZ.

    A large product is split across cnnlab's threads (ops/parallel.py, which holds BLAS to one
    thread) by blocks of its columns: Z and dW by output features (columns of W and dZ), dX by
    input features (rows of W), so that each thread reads its own part of W and no sum is split.
    """

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        z = _columns_on_threads(x, w)  # (N, F_out)
        if b is not None:
            z += b
        return z

    def backward(self, gy):
        x, w = self.x, self.w
        gx = _columns_on_threads(gy, w.T) if self.needs_grad[0] else None  # (N, F_in)
        gw = _columns_on_threads(x.T, gy) if self.needs_grad[1] else None  # (F_in, F_out)
        gb = gy.sum(axis=0) if len(self.needs_grad) > 2 and self.needs_grad[2] else None
        return gx, gw, gb


# Blocks of columns of about this many bytes each (a column of b and the column of the result);
# below half of it, nothing is split.
_BLOCK_BYTES = 1 << 20


def _columns_on_threads(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, its columns in blocks dealt to cnnlab's threads: out[:, o] = a @ b[:, o].

    Each block reads its own columns of b (of W, or of dZ for dW) and writes its own columns of
    the result, so no sum is split between threads. One block (the product whole) when small.
    """
    column_bytes = (b.shape[0] + a.shape[0]) * b.itemsize
    if column_bytes * b.shape[1] < _BLOCK_BYTES // 2:  # one block: no split (a batch-1 layer)
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)

    def share(blocks):
        for o in blocks:
            np.matmul(a, b[:, o], out=out[:, o])

    map_chunks(share, batch_chunks(b.shape[1], column_bytes, _BLOCK_BYTES))
    return out


def matmul(a, b) -> Tensor:
    """Matrix product ``a @ b`` with NumPy's rules."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: operands must have at least 1 axis; received {a.shape} @ {b.shape}"
        )
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: inner dimensions differ; received {a.shape} @ {b.shape}")
    return MatMul().apply(a, b)


def linear(x, w, b=None) -> Tensor:
    """Dense layer ``y = x @ w + b``.

    Args:
        x: (N, F_in).  w: (F_in, F_out).  b: (F_out,) or None.

    Returns:
        (N, F_out).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.linear(cl.tensor(np.ones((2, 3))), cl.tensor(np.ones((3, 4)))).shape
    (2, 4)
    """
    x, w = as_tensor(x), as_tensor(w)
    check_float("linear", "x", x)
    check_float("linear", "w", w)
    check_same_dtype("linear", x=x, w=w, b=None if b is None else as_tensor(b))
    if x.ndim != 2:
        raise ValueError(f"linear: x must be 2-D (N, F_in); received x.shape={x.shape}")
    if w.ndim != 2 or w.shape[0] != x.shape[1]:
        raise ValueError(
            f"linear: x has {x.shape[1]} features but w expects "
            f"{w.shape[0] if w.ndim == 2 else '?'} (w is (F_in, F_out)); "
            f"received x.shape={x.shape}, w.shape={w.shape}"
        )
    if b is None:
        return Linear().apply(x, w)
    b = as_tensor(b)
    if b.shape != (w.shape[1],):
        raise ValueError(
            f"linear: b must have shape ({w.shape[1]},) to match w.shape={w.shape}; "
            f"received b.shape={b.shape}"
        )
    return Linear().apply(x, w, b)
