"""The prepared convolution: inference on fixed weights, a batch that fits one chunk (batch 1).

A batch-1 layer costs what its NumPy calls cost, not its arithmetic. ``Prepared(geom).prepare(w,
b, relu)`` does the per-call set-up once: the kernel matrix (W as (K, C_out), or the banded T),
the bias laid along an image row, the zero-bordered input buffer and its window view, the
window (or row) matrix. A call then copies the input into the buffer's interior, copies the
windows, makes one product and adds the bias. Inference only (no backward), for
:class:`cnnlab.nn.Predictor`, through :func:`cnnlab.kernels.prepare`.
"""

from __future__ import annotations

import numpy as np

from cnnlab.kernels.banded import Banded
from cnnlab.kernels.base import Kernel
from cnnlab.kernels.window import Window
from cnnlab.ops._util import repeat_row
from cnnlab.ops.activation import relu_array
from cnnlab.ops.geometry import windows

__all__ = ["Prepared"]


class Prepared(Kernel):
    """Z = cols W + b (or the banded rows T) with every buffer made once; forward only."""

    name = "prepared"
    keeps = "nothing (inference only): its buffers, reused call after call"

    @classmethod
    def eligible(cls, geom):
        """One group, the batch in one chunk, and more than one input channel unless banded
        (one channel copies its windows tap by tap: the Window kernel does that)."""
        banded = Banded.eligible(geom)
        chunk = Banded(geom).batch_chunks if banded else Window(geom).batch_chunks
        return (geom.groups == 1 and len(chunk(geom.x_shape[0])) == 1
                and (banded or geom.x_shape[3] > 1))

    def forward(self, x, w, b, need_w):
        return self.prepare(w, b)(x)

    def backward(self, gy, need_x, need_w, need_b):
        raise RuntimeError("the prepared convolution is for inference: it has no backward")

    def prepare(self, w, b=None, relu=False):
        """``run(x) -> Z`` (then max(Z, 0) with ``relu``) for inputs of the geometry's shape.
        The buffers are reused: one call at a time; the result is a new array each call.
        ``run.kernel`` is this kernel's name."""
        geom = self.geom
        n, h, wd, c_in = geom.x_shape
        kh, kw, cg, c_out = w.shape
        (pt, pb), (pl, pr) = geom.pads
        oh, ow = geom.out_hw
        banded = Banded.eligible(geom)
        if banded:  # rows (N*OH*OW/B, KH*Q*C_in) @ T (KH*Q*C_in, B*C_out)
            band = Banded(geom)
            q = band.band + geom.dilation[1] * (kw - 1)
            mat = band.band_matrix(w)
            kernel, stride, dilation = (kh, q), (1, band.band), (geom.dilation[0], 1)
        else:  # cols (N*OH*OW, K) @ W (K, C_out)
            mat = w.reshape(kh * kw * cg, c_out)
            kernel, stride, dilation = (kh, kw), geom.stride, geom.dilation
        x_pad = np.zeros((n, h + pt + pb, wd + pl + pr, c_in), w.dtype) if geom.padded else None
        win = windows(np.empty(geom.x_shape, w.dtype) if x_pad is None else x_pad, kernel,
                      stride, dilation)  # the padded buffer's windows (unpadded: made per call)
        buf = np.empty(win.shape, dtype=w.dtype)
        lhs = buf.reshape(-1, mat.shape[0])  # the window (or row) matrix
        bias_row = None if b is None else repeat_row(b, ow)  # (OW*C_out,)

        def run(x):
            if banded and not np.isfinite(x).all():  # T's zeros: the window matrix instead
                z = Window(geom).forward(x, w, b, False)
                return relu_array(z, out=z) if relu else z
            if x_pad is not None:
                x_pad[:, pt : pt + h, pl : pl + wd] = x  # the interior only: the border stays 0
                buf[...] = win
            else:
                buf[...] = windows(x, kernel, stride, dilation)
            z = np.empty((n, oh, ow, c_out), dtype=w.dtype)
            np.matmul(lhs, mat, out=z.reshape(lhs.shape[0], -1))
            if bias_row is not None:
                rows = z.reshape(n * oh, ow * c_out)  # image rows, a view
                rows += bias_row
            return relu_array(z, out=z) if relu else z

        run.kernel = self.name
        return run
