"""Synchronised batch normalisation: the statistics of the GLOBAL batch, over all processes.

Legend: p processes; rank r holds m_r values per channel (n_r images x H x W), M = sum_r m_r;
B = sum_r n_r the global batch. Sums run over all M values of a channel unless said "local".

Forward (two small allreduces of (C,) vectors, then the usual formula):

    mu    = (sum_r local_sum(x)) / M
    var   = (sum_r local_sum((x - mu)^2)) / M           (biased; the running one gets M/(M-1))
    x_hat = (x - mu) / sqrt(var + eps),   y = gamma * x_hat + beta

Backward. Rank r's upstream gy is the gradient of its LOCAL mean loss; the global loss is
L = sum_r w_r L_r with w_r = n_r / B = m_r / M (what the gradient average computes). So

    S1 = sum_r w_r local_sum(gy),   S2 = sum_r w_r local_sum(gy * x_hat)     (one allreduce)
    gx = (gamma / sqrt(var + eps) / M) * (M gy - (S1 + x_hat S2) / w_r)

is dL_r-scaled: multiplied by w_r and summed over the ranks it is dL/dx of one process at batch
B. ggamma = local_sum(gy * x_hat) and gbeta = local_sum(gy) stay local: the trainer's gradient
average weights them by w_r like every other parameter's.

With equal shares (w_r = 1/p) this is PyTorch's SyncBatchNorm. Eval mode uses the running
statistics, exactly as BatchNorm2D/1D do.
"""

from __future__ import annotations

import numpy as np

from cnnlab.nn._util import check_input
from cnnlab.nn.normalization import BatchNorm1D, BatchNorm2D, _BatchNorm
from cnnlab.ops.normalization import update_running
from cnnlab.tensor import Function

__all__ = ["SyncBatchNorm2D", "SyncBatchNorm1D", "convert_sync_batchnorm"]


class SyncBatchNormOp(Function):
    """Batch norm over the global batch (training mode only); see the module docstring."""

    def __init__(self, world, running_mean, running_var, momentum: float, eps: float):
        self.world, self.momentum, self.eps = world, momentum, eps
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, gamma, beta):
        c = x.shape[-1]
        xr = x.reshape(-1, c)  # (m_r, C)
        m_r = xr.shape[0]
        buf = np.concatenate([xr.sum(axis=0, dtype=np.float64), [m_r]])  # (C + 1,)
        self.world.allreduce_(buf, what="the synchronised batch norm")
        big_m = buf[-1]
        mean = (buf[:c] / big_m).astype(x.dtype)  # (C,)
        xc = xr - mean  # (m_r, C)
        sq = np.einsum("mc,mc->c", xc, xc).astype(np.float64)  # (C,) local sum (x - mu)^2
        self.world.allreduce_(sq, what="the synchronised batch norm")
        var = (sq / big_m).astype(x.dtype)  # (C,) biased
        inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
        if self.running_mean is not None:
            update_running(self.running_mean, self.running_var, mean, var, big_m, self.momentum)
        x_hat = xc * inv_std  # (m_r, C)
        self.x_hat, self.inv_std, self.gamma = x_hat, inv_std, gamma
        self.w_r, self.big_m, self.shape = m_r / big_m, big_m, x.shape
        return (x_hat * gamma + beta).reshape(x.shape)

    def backward(self, gy):
        c = self.shape[-1]
        gyr = gy.reshape(-1, c)  # (m_r, C)
        sum_gy = gyr.sum(axis=0)  # (C,) local
        sum_gy_xhat = np.einsum("mc,mc->c", gyr, self.x_hat)  # (C,) local
        buf = np.concatenate([sum_gy, sum_gy_xhat]).astype(np.float64) * self.w_r  # (2C,)
        self.world.allreduce_(buf, what="the synchronised batch norm")
        s1, s2 = buf[:c] / self.w_r, buf[c:] / self.w_r  # (C,), (C,) in local scale
        scale = self.gamma * self.inv_std / self.big_m  # (C,)
        gx = scale * (self.big_m * gyr - (s1 + self.x_hat * s2).astype(gy.dtype))  # (m_r, C)
        return gx.reshape(self.shape).astype(gy.dtype), sum_gy_xhat, sum_gy


class _SyncBatchNorm(_BatchNorm):
    world = None  # set by convert_sync_batchnorm

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        check_input(x, self._name, self._ndim, self._layout, self.channels)
        op = SyncBatchNormOp(self.world, self.running_mean, self.running_var, self.momentum,
                             self.eps)
        return op.apply(x, self.gamma, self.beta)


class SyncBatchNorm2D(_SyncBatchNorm, BatchNorm2D):
    """BatchNorm2D whose training statistics are those of the global batch (all processes)."""

    _name = "SyncBatchNorm2D"


class SyncBatchNorm1D(_SyncBatchNorm, BatchNorm1D):
    """BatchNorm1D whose training statistics are those of the global batch (all processes)."""

    _name = "SyncBatchNorm1D"


def convert_sync_batchnorm(model, world) -> int:
    """Make every BatchNorm2D/1D of ``model`` synchronised over ``world``, in place (same
    parameters, buffers and state_dict names: checkpoints stay interchangeable). Returns how
    many layers were converted."""
    count = 0
    for m in model.modules():
        if isinstance(m, _SyncBatchNorm):
            m.world = world
            continue
        for plain, sync in ((BatchNorm2D, SyncBatchNorm2D), (BatchNorm1D, SyncBatchNorm1D)):
            if type(m) is plain:
                m.__class__ = sync
                m.world = world
                count += 1
    return count

