"""Batch normalization (Ioffe & Szegedy, 2015), channels-last.

Legend: N batch, H/W height and width, C channels (or F features for 2-D input), m the number
of values normalised together per channel (m = N*H*W for (N, H, W, C), m = N for (N, F)).

Every channel c is normalised over the batch (and the spatial positions):

    mu_c    = (1/m) sum x                     (batch mean)
    var_c   = (1/m) sum (x - mu_c)^2          (biased batch variance, used to normalise)
    x_hat   = (x - mu_c) / sqrt(var_c + eps)
    y       = gamma_c * x_hat + beta_c

Two conventions, chosen on purpose:

* ``momentum`` follows Keras: ``running = momentum * running + (1 - momentum) * batch_stat``,
  so the default 0.9 keeps 90% of the old value. PyTorch's ``momentum`` is ``1 - ours``
  (its default 0.1 is our 0.9).
* The running variance is updated with the UNBIASED batch variance ``var_c * m / (m - 1)``, as
  PyTorch does; the normalisation itself uses the biased one. A batch with one value per
  channel (m = 1) has no variance and is refused in training, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops._util import as_tensor, check_float, check_same_dtype, repeat_row
from cnnlab.tensor import Function, Tensor

__all__ = ["batch_norm", "update_running"]


class BatchNorm(Function):
    """y = gamma * x_hat + beta, with x_hat normalised per channel (last axis).

    Forward (training): batch mean and biased variance over every axis but the last; updates
    the running statistics in place. Forward (eval): the running statistics replace the batch
    ones, so y is an affine function of x.

    The cache: ``x``, which the graph holds anyway, ``mean`` (C,) and
    ``inv_std = 1 / sqrt(var + eps)`` (C,), as in PyTorch: one full-size array fewer kept from
    forward to backward than ``x_hat`` would be. Backward rebuilds ``x - mean`` and folds
    ``inv_std`` into its per-channel factors (``x_hat = (x - mean) * inv_std``).

    Backward, sums over the m normalised positions of each channel:

        training:  gx     = (gamma * inv_std / m) * (m*gy - sum(gy) - x_hat * sum(gy * x_hat))
        eval:      gx     = gy * gamma * inv_std
        both:      ggamma = sum(gy * x_hat)
                   gbeta  = sum(gy)

    (The training formula is dL/dx through x_hat, mu and var together, simplified.)
    ``gamma`` and ``beta`` may be None (no affine part: gamma = 1, beta = 0).

    Layout, for speed: the arrays are handled as image rows, (N*H, W*C) for 4-D x ((N, F) for
    2-D x), and every per-channel vector (C,) is repeated W times to (W*C,) before it is
    broadcast over them (``repeat_row``). NumPy is several times slower on the (m, C) layout with
    C = 16: its inner loops would run 16 values long. Per-channel sums likewise add the rows
    first, then the W groups of C (``_channel_sum``, ``_channel_dot``). Full-size work is done
    in place, in buffers this op owns.
    """

    def __init__(self, training: bool, running_mean, running_var, momentum: float, eps: float):
        self.training = training
        self.running_mean = running_mean
        self.running_var = running_var
        self.momentum = momentum
        self.eps = eps

    def forward(self, x, gamma=None, beta=None):
        shape = x.shape
        c = shape[-1]
        w = shape[-2] if x.ndim == 4 else 1  # channel groups in a row
        xr = x.reshape(-1, w * c)  # (N*H, W*C) image rows, or (N, F); a view for a contiguous x
        m = xr.size // c
        y = np.empty_like(xr)  # (N*H, W*C), our buffer: x - mean, then y
        if self.training:
            mean = _channel_sum(xr, c) / m  # (C,)
            np.subtract(xr, repeat_row(mean, w), out=y)  # (N*H, W*C) x - mean
            var = _channel_dot(y, y, c) / m  # (C,) biased
            inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
            if self.running_mean is not None:
                update_running(self.running_mean, self.running_var, mean, var, m, self.momentum)
        else:
            mean = self.running_mean.astype(x.dtype)  # (C,), a copy (kept); no float64 upcast
            var = self.running_var.astype(x.dtype, copy=False)
            inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
        self.x, self.mean, self.inv_std, self.m, self.shape = xr, mean, inv_std, m, shape
        self.gamma = gamma
        scale = inv_std if gamma is None else gamma * inv_std  # (C,)
        if not self.training:
            # an affine map of x: y = scale * x + (beta - scale * mean), two passes, not three
            shift = -scale * mean if beta is None else beta - scale * mean  # (C,)
            np.multiply(xr, repeat_row(scale, w), out=y)
            y += repeat_row(shift, w)
            return y.reshape(shape)
        y *= repeat_row(scale, w)  # (N*H, W*C) gamma * x_hat
        if beta is not None:
            y += repeat_row(beta, w)
        return y.reshape(shape)

    def backward(self, gy):
        shape, inv_std, m = self.shape, self.inv_std, self.m
        c = shape[-1]
        w = shape[-2] if len(shape) == 4 else 1
        gyr = gy.reshape(-1, w * c)  # (N*H, W*C), like x
        needs = self.needs_grad + (False,) * (3 - len(self.needs_grad))
        sum_gy = _channel_sum(gyr, c)  # (C,)
        gx = ggamma = gbeta = None
        if needs[1] or (needs[0] and self.training):
            # x_hat = xc * inv_std is not formed: inv_std goes into the per-channel factors
            xc = np.subtract(self.x, repeat_row(self.mean, w))  # (N*H, W*C) x - mean, our buffer
            sum_gy_xhat = inv_std * _channel_dot(gyr, xc, c)  # (C,) sum(gy * x_hat)
        if needs[0]:
            scale = inv_std if self.gamma is None else self.gamma * inv_std  # (C,)
            if self.training:
                # gx = scale * (gy - (sum(gy) + x_hat * sum(gy * x_hat)) / m), in xc's buffer
                gx = xc
                gx *= repeat_row(inv_std * sum_gy_xhat / m, w)  # x_hat * sum(gy * x_hat) / m
                gx += repeat_row(sum_gy / m, w)
                np.subtract(gyr, gx, out=gx)
                gx *= repeat_row(scale, w)  # (N*H, W*C)
            else:
                gx = gyr * repeat_row(scale, w)  # (N*H, W*C)
            gx = gx.reshape(shape)
        if needs[1]:
            ggamma = sum_gy_xhat
        if needs[2]:
            gbeta = sum_gy
        return gx, ggamma, gbeta

    def eval_affine(self, gamma=None, beta=None):
        """Eval-mode batch norm as one affine map per channel: ``(s, t)`` with y = s * x + t,

            s = gamma / sqrt(running_var + eps),   t = beta - s * running_mean

        (gamma None: 1; beta None: 0), each (C,), computed in float64 whatever the dtypes of
        the statistics and of ``gamma``, ``beta`` (ndarrays (C,) or None). None in training
        mode or without running statistics, where y is not an affine map of x fixed ahead.
        Since z = conv(x, W) + b is linear in W and b, a batch norm after a convolution folds
        into it: y = conv(x, s W) + (s b + t), ``s`` scaling each filter (the Predictor's fold).
        ``forward`` computes the same map in x's dtype.

        >>> import numpy as np
        >>> bn = BatchNorm(False, np.array([1.0]), np.array([4.0]), 0.9, 0.0)
        >>> bn.eval_affine(np.array([2.0]), np.array([3.0]))  # s = 2 / 2, t = 3 - 1 * 1
        (array([1.]), array([2.]))
        """
        if self.training or self.running_mean is None or self.running_var is None:
            return None
        s = 1.0 / np.sqrt(np.asarray(self.running_var, np.float64) + self.eps)  # (C,)
        if gamma is not None:
            s = s * np.asarray(gamma, np.float64)
        t = -s * np.asarray(self.running_mean, np.float64)  # (C,)
        if beta is not None:
            t = t + np.asarray(beta, np.float64)
        return s, t


def update_running(running_mean, running_var, mean, var, m, momentum: float) -> None:
    """The running statistics after a training batch, in place (Keras momentum):
    running = momentum * running + (1 - momentum) * batch statistic, the variance taken
    unbiased, var * m / (m - 1), over the m values of a channel (as PyTorch does)."""
    running_mean *= momentum
    running_mean += (1.0 - momentum) * mean
    running_var *= momentum
    running_var += (1.0 - momentum) * (var * (m / max(m - 1, 1)))


def _channel_sum(a, c: int):
    """Per-channel sum of image rows a (N*H, W*C): over the rows, then the W groups. (C,)"""
    return a.sum(axis=0).reshape(-1, c).sum(axis=0)  # (W*C,) -> (W, C) -> (C,)


def _channel_dot(a, b, c: int):
    """Per-channel sum(a * b) of two (N*H, W*C) arrays, with no full-size product. (C,)"""
    rows = np.einsum("rk,rk->k", a, b)  # (W*C,)
    return rows.reshape(-1, c).sum(axis=0)  # (W, C) -> (C,)


def _running(name: str, r, c: int, training: bool):
    """The running statistic as a writable float ndarray of shape (C,) (a Tensor's .data)."""
    if isinstance(r, Tensor):
        r = r.data
    if not isinstance(r, np.ndarray):
        raise TypeError(
            f"batch_norm: {name} must be a NumPy array or a Tensor (it is updated in place); "
            f"received {type(r).__name__}"
        )
    if r.dtype not in (np.float32, np.float64):
        raise TypeError(f"batch_norm: {name} must be float32 or float64; received dtype {r.dtype}")
    if r.shape != (c,):
        raise ValueError(
            f"batch_norm: {name} must have shape ({c},), one value per channel; "
            f"received {name}.shape={r.shape}"
        )
    if training and not r.flags.writeable:
        raise ValueError(f"batch_norm: {name} must be writable (it is updated in place)")
    return r


def batch_norm(
    x, gamma, beta, running_mean, running_var, training, momentum=0.9, eps=1e-5
) -> Tensor:
    """Batch normalization over every axis but the last (the channels).

    ``y = gamma * (x - mu) / sqrt(var + eps) + beta``, per channel. In training, ``mu`` and
    ``var`` are the batch mean and biased batch variance, and the running statistics are
    updated in place (Keras momentum):

        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var  = momentum * running_var  + (1 - momentum) * var * m / (m - 1)

    (the running variance takes the unbiased batch variance, as PyTorch does; PyTorch's
    ``momentum`` is ``1 - momentum`` here). In eval (``training=False``) the running statistics
    are used as ``mu`` and ``var`` and nothing is updated.

    Gradients (sums over the m values of a channel, x_hat = (x - mu) / sqrt(var + eps)):

        gx     = (gamma / (m sqrt(var + eps))) * (m*gy - sum(gy) - x_hat * sum(gy * x_hat))
                 (training);   gx = gy * gamma / sqrt(var + eps)   (eval)
        ggamma = sum(gy * x_hat)
        gbeta  = sum(gy)

    Args:
        x: (N, H, W, C) normalised over N, H, W; or (N, F) normalised over N. Float.
        gamma: scale, (C,), same dtype as x; None for 1.
        beta: shift, (C,), same dtype as x; None for 0.
        running_mean, running_var: (C,) float NumPy arrays (or Tensors, whose ``.data`` is
            used), updated in place when ``training``. Both may be None in training (nothing
            is tracked); eval needs them.
        training: use (and update with) the batch statistics when True.
        momentum: weight of the old running value, in [0, 1].
        eps: added to the variance, > 0.

    Shape:
        x: (N, H, W, C) or (N, F);  gamma, beta, running_*: (C,);  output: same as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> x = cl.tensor(np.random.default_rng(0).normal(size=(4, 5, 5, 3)), requires_grad=True)
    >>> g, b = cl.tensor(np.ones(3)), cl.tensor(np.zeros(3))
    >>> rm, rv = np.zeros(3), np.ones(3)
    >>> F.batch_norm(x, g, b, rm, rv, training=True).shape
    (4, 5, 5, 3)
    """
    x = as_tensor(x)
    check_float("batch_norm", "x", x)
    if x.ndim not in (2, 4):
        raise ValueError(
            f"batch_norm: x must be 2-D (N, F) or 4-D (N, H, W, C); received x.shape={x.shape}"
        )
    c = x.shape[-1]
    params = {}
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is None:
            continue
        if not isinstance(p, Tensor):
            p = Tensor(np.asarray(p, dtype=x.dtype))  # a plain array follows x's dtype
        check_float("batch_norm", name, p)
        if p.shape != (c,):
            raise ValueError(
                f"batch_norm: x has {c} channels (last axis) but {name} has shape {p.shape}; "
                f"{name} must be ({c},); received x.shape={x.shape}"
            )
        params[name] = p
    check_same_dtype("batch_norm", x=x, gamma=params.get("gamma"), beta=params.get("beta"))
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"batch_norm: training must be True or False; received {training!r}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum must be in [0, 1]; received {momentum}")
    if not eps > 0:
        raise ValueError(f"batch_norm: eps must be > 0; received {eps}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            "batch_norm: give both running_mean and running_var, or neither (training only)"
        )
    if running_mean is None:
        if not training:
            raise ValueError(
                "batch_norm: eval (training=False) needs running_mean and running_var; "
                "received None"
            )
    else:
        running_mean = _running("running_mean", running_mean, c, training)
        running_var = _running("running_var", running_var, c, training)
    m = x.size // c if c else 0
    if training and m <= 1:
        raise ValueError(
            f"batch_norm: training needs more than one value per channel to compute a batch "
            f"variance; received x.shape={x.shape} ({m} value{'' if m == 1 else 's'} per channel)"
        )
    op = BatchNorm(bool(training), running_mean, running_var, float(momentum), float(eps))
    return op.apply(x, params.get("gamma"), params.get("beta"))
