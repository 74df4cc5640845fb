"""Losses: cross-entropy (fused with log-softmax), binary cross-entropy on logits, squared error.

Legend: N batch, K classes. Every loss returns a scalar tensor (shape ``()``): the mean over the
batch (cross-entropy) or over the entries (the others).
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops._util import as_tensor, check_float, check_same_dtype
from cnnlab.tensor import Function, Tensor

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss"]


def _target_tensor(op: str, target, like: Tensor, like_name: str) -> Tensor:
    """A float target as a Tensor. A target that needs no gradient follows ``like``'s dtype (no
    float64 upcast); a differentiable one must already have that dtype."""
    if isinstance(target, Tensor):
        if target.requires_grad:
            check_float(op, "target", target)
            check_same_dtype(op, **{like_name: like, "target": target})
            return target
        target = target.data
    return Tensor(np.asarray(target, dtype=like.dtype))


# ---------------------------------------------------------------------------- cross-entropy
class CrossEntropy(Function):
    """L = -(1/N) sum_i sum_k t_ik log softmax(z)_ik, log-softmax computed stably.

    ``log softmax(z)_ik = (z_ik - max_k z_ik) - log sum_k exp(z_ik - max_k z_ik)``.
    The target ``t`` is one-hot of the labels, or the given class probabilities ``p``; with
    label smoothing eps, ``t = (1 - eps) * t + eps / K`` (as PyTorch).

    Backward:  gz = gy * (softmax(z) - t) / N
               gp = -gy * (1 - eps) * log softmax(z) / N      (probability targets only)

    Cache: ``log_p = log softmax(z)`` (N, K).
    """

    def __init__(self, labels=None, label_smoothing: float = 0.0):
        self.labels = labels  # (N,) ints, or None when the target is probabilities
        self.eps = label_smoothing

    def forward(self, z, p=None):
        n, k = z.shape
        shifted = z - z.max(axis=1, keepdims=True)  # (N, K), max 0 per row
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, K)
        self.log_p, self.p = log_p, p
        if self.labels is not None:
            picked = log_p[np.arange(n), self.labels]  # (N,) log p of the right class
            per_example = -(1.0 - self.eps) * picked
        else:
            per_example = -(1.0 - self.eps) * (p * log_p).sum(axis=1)  # (N,)
        if self.eps:
            per_example = per_example - (self.eps / k) * log_p.sum(axis=1)
        return np.asarray(per_example.mean(), dtype=z.dtype)  # ()

    def backward(self, gy):
        log_p = self.log_p
        n, k = log_p.shape
        scale = gy / n  # () same dtype as z
        gz = gp = None
        if self.needs_grad[0]:
            gz = np.exp(log_p)  # softmax, (N, K)
            if self.eps:
                gz -= self.eps / k
            if self.labels is not None:
                gz[np.arange(n), self.labels] -= 1.0 - self.eps
            else:
                gz -= (1.0 - self.eps) * self.p
            gz *= scale
        if len(self.needs_grad) > 1 and self.needs_grad[1]:
            gp = -(1.0 - self.eps) * scale * log_p  # (N, K)
        return (gz,) if len(self.needs_grad) == 1 else (gz, gp)


def cross_entropy(logits, target, label_smoothing=0.0) -> Tensor:
    """Softmax cross-entropy of logits against labels or class probabilities, mean over the batch.

    ``L = -(1/N) sum_i sum_k t_ik log softmax(z)_ik`` where ``t`` is the one-hot of integer
    labels or the given probabilities; with ``label_smoothing`` eps, ``t`` becomes
    ``(1 - eps) t + eps / K`` (PyTorch's convention). The log-softmax is fused in and computed
    from ``z - max(z)``, so logits of any size give a finite loss.

    Gradients:  gz = gy * (softmax(z) - t) / N;  for probability targets that require a
    gradient, gt = -gy * (1 - eps) * log softmax(z) / N.

    Args:
        logits: (N, K) float tensor.
        target: integer labels (N,) in [0, K) (a NumPy int array, an int Tensor or a list), or
            class probabilities (N, K) of floating dtype.
        label_smoothing: eps in [0, 1].

    Shape:
        logits (N, K); target (N,) or (N, K); output () (a scalar).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> z = cl.tensor(np.zeros((4, 10)), requires_grad=True)
    >>> loss = F.cross_entropy(z, np.array([0, 3, 9, 1]))
    >>> loss.shape, round(float(loss), 4)   # log(10)
    ((), 2.3026)
    """
    op = "cross_entropy"
    logits = as_tensor(logits)
    check_float(op, "logits", logits)
    if logits.ndim != 2:
        raise ValueError(f"{op}: logits must be 2-D (N, K); received logits.shape={logits.shape}")
    n, k = logits.shape
    if n == 0 or k == 0:
        raise ValueError(
            f"{op}: logits must have at least one example and one class; "
            f"received logits.shape={logits.shape}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1]; received {label_smoothing}")
    raw = target.data if isinstance(target, Tensor) else np.asarray(target)
    if raw.dtype.kind == "f":
        if raw.shape != (n, k):
            raise ValueError(
                f"{op}: a floating target is read as class probabilities and must have the "
                f"shape of logits ({n}, {k}); received target.shape={raw.shape} "
                f"(pass class labels as an integer array of shape ({n},))"
            )
        probs = _target_tensor(op, target, logits, "logits")
        return CrossEntropy(None, float(label_smoothing)).apply(logits, probs)
    if raw.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must be integer labels (N,) or float probabilities (N, K); "
            f"received dtype {raw.dtype}"
        )
    if raw.shape != (n,):
        raise ValueError(
            f"{op}: integer labels must have shape ({n},), one per example of logits "
            f"{logits.shape}; received target.shape={raw.shape}"
        )
    bad = (raw < 0) | (raw >= k)
    if bad.any():
        values = np.unique(raw[bad])
        shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if values.size > 10 else "")
        raise ValueError(
            f"{op}: labels must be in [0, {k}) for logits with {k} classes; "
            f"received label value(s) {shown} ({int(bad.sum())} of {n} labels out of range)"
        )
    labels = raw.astype(np.intp, copy=False)
    return CrossEntropy(labels, float(label_smoothing)).apply(logits)


# ---------------------------------------------------------------------------- binary CE
class BCEWithLogits(Function):
    """L = (1/count) sum over known entries of  max(z, 0) - z*y + log(1 + exp(-|z|)).

    That is -(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))) written without overflow.
    ``count`` = number of known entries (mask 1); unknown entries contribute nothing.

    Backward:  gz = gy * mask * (sigmoid(z) - y) / count
               gy_target = -gy * mask * z / count     (only when the target requires grad)

    Cache: ``sigmoid(z)`` (or nothing when no entry is known).
    """

    def __init__(self, mask=None):
        self.mask = mask  # None (all known) or a {0, 1} array of z's dtype

    def forward(self, z, y):
        mask = self.mask
        self.count = z.size if mask is None else int(np.count_nonzero(mask))
        if mask is not None:
            y = np.where(mask != 0, y, 0)  # unknown targets may hold anything, NaN included
        self.z, self.y = z, y
        e = np.exp(-np.abs(z))  # in (0, 1], never overflows
        self.e = e
        per_entry = np.maximum(z, 0) - z * y + np.log1p(e)
        if mask is not None:
            per_entry = per_entry * mask
        if self.count == 0:
            return np.zeros((), dtype=z.dtype)
        return np.asarray(per_entry.sum() / self.count, dtype=z.dtype)  # ()

    def backward(self, gy):
        z, e = self.z, self.e
        if self.count == 0:
            zero = np.zeros_like(z)
            return zero if self.needs_grad[0] else None, zero if self.needs_grad[1] else None
        scale = gy / self.count
        if self.mask is not None:
            scale = scale * self.mask
        gz = gt = None
        if self.needs_grad[0]:
            sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid(z), stable both ways
            gz = (sig - self.y) * scale
        if self.needs_grad[1]:
            gt = -z * scale
        return gz, gt


def binary_cross_entropy_with_logits(logits, target, mask=None) -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], from the logits.

    Per entry ``l = max(z, 0) - z*y + log(1 + exp(-|z|))`` (= -y log s - (1-y) log(1-s) with
    s = sigmoid(z), computed without overflow). The loss is the mean over the KNOWN entries:
    ``L = sum(mask * l) / count`` with ``count = sum(mask)``; unknown labels ('?', mask 0)
    contribute nothing and their target value is ignored (it may be NaN). Without a mask every
    entry is known. If no entry is known (or the input is empty), L = 0 and its gradient is 0.

    Gradients:  gz = gy * mask * (sigmoid(z) - y) / count;  for a target that requires a
    gradient, gy_target = -gy * mask * z / count.

    Args:
        logits: float tensor of any shape (e.g. (N,) or (N, labels)).
        target: same shape, values in [0, 1] (hard 0/1 labels or soft ones).
        mask: None, or the same shape, bool or 0/1: 1 where the label is known.

    Shape:
        logits, target, mask: the same shape (any); output () (a scalar).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> z = cl.tensor(np.zeros((2, 3)), requires_grad=True)
    >>> y = np.array([[1.0, 0.0, np.nan], [0.0, 1.0, 1.0]])
    >>> loss = F.binary_cross_entropy_with_logits(z, y, mask=~np.isnan(y))
    >>> loss.shape, round(float(loss), 4)   # log(2)
    ((), 0.6931)
    """
    op = "binary_cross_entropy_with_logits"
    logits = as_tensor(logits)
    check_float(op, "logits", logits)
    raw = target.data if isinstance(target, Tensor) else np.asarray(target)
    if raw.shape != logits.shape:
        raise ValueError(
            f"{op}: target must have the shape of logits {logits.shape}; "
            f"received target.shape={raw.shape}"
        )
    if raw.dtype.kind not in "fiub":
        raise TypeError(f"{op}: target must be numeric; received dtype {raw.dtype}")
    target = _target_tensor(op, target, logits, "logits")
    if mask is not None:
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.shape != logits.shape:
            raise ValueError(
                f"{op}: mask must have the shape of logits {logits.shape}; "
                f"received mask.shape={m.shape}"
            )
        if m.dtype != np.bool_ and (m.dtype.kind not in "fiu" or not np.all((m == 0) | (m == 1))):
            raise ValueError(
                f"{op}: mask must be bool or hold only 0 and 1 (1 = label known); "
                f"received dtype {m.dtype} with other values"
            )
        mask = m.astype(logits.dtype)
    return BCEWithLogits(mask).apply(logits, target)


# ---------------------------------------------------------------------------- squared error
class MSELoss(Function):
    """L = (1/n) sum (pred - target)^2 over all n entries.

    Backward:  gpred = gy * 2 (pred - target) / n;   gtarget = -gpred.
    Cache: the difference ``pred - target``.
    """

    def forward(self, pred, target):
        self.diff = pred - target
        return np.asarray(np.mean(self.diff * self.diff), dtype=pred.dtype)  # ()

    def backward(self, gy):
        g = self.diff * (2 * gy / self.diff.size)
        return (g if self.needs_grad[0] else None), (-g if self.needs_grad[1] else None)


def mse_loss(pred, target) -> Tensor:
    """Mean squared error ``L = (1/n) sum (pred - target)^2`` over all n entries.

    Gradients:  gpred = gy * 2 (pred - target) / n;   gtarget = -gy * 2 (pred - target) / n.

    Args:
        pred: float tensor of any shape.
        target: the same shape (no broadcasting: a shape mismatch is an error).

    Shape:
        pred, target: the same shape (any, non-empty); output () (a scalar).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> loss = F.mse_loss(cl.tensor(np.array([1.0, 2.0])), np.array([0.0, 0.0]))
    >>> loss.shape, float(loss)
    ((), 2.5)
    """
    op = "mse_loss"
    pred = as_tensor(pred)
    check_float(op, "pred", pred)
    raw = target.data if isinstance(target, Tensor) else np.asarray(target)
    if raw.shape != pred.shape:
        raise ValueError(
            f"{op}: target must have the shape of pred {pred.shape} (no broadcasting); "
            f"received target.shape={raw.shape}"
        )
    if raw.dtype.kind not in "fiub":
        raise TypeError(f"{op}: target must be numeric; received dtype {raw.dtype}")
    if pred.size == 0:
        raise ValueError(f"{op}: pred is empty; received pred.shape={pred.shape}")
    return MSELoss().apply(pred, _target_tensor(op, target, pred, "pred"))
