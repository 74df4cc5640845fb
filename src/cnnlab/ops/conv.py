"""2-D convolution (cross-correlation, as every deep-learning framework computes it).

Legend: N batch, H/W input height/width, C_in input channels, C_out output channels,
KH/KW kernel, OH/OW output, G groups, Cg = C_in / G, Og = C_out / G, M = N*OH*OW rows,
K = KH*KW*Cg taps per output value.

Forward, per example n, output position (i, j) and filter o (the notes' Z = W * A_prev + b):

    Z[n, i, j, o] = b[o] + sum_{u, v, c} A_pad[n, i*s + u*d, j*s + v*d, g*Cg + c] * W[u, v, c, o]

where g = o // Og is the group of filter o. Vectorised: the windows of the padded input are a
strided view, copied into a matrix ``cols`` (M, K), and one BLAS product gives Z = cols @ W.
The batch is walked in chunks of a few images, so that each chunk's cols (about 2 MB) is still
in the processor's cache when the product reads it, and cols is never built whole; the chunks
are dealt to cnnlab's threads (ops/parallel.py), each with its own buffers.

Backward, with gy = dZ:

    db = sum_{n, i, j} dZ[n, i, j, :]
    dW = cols^T @ dZ                      (K, C_out): each weight sees every window it met;
                                          cols is built again, chunk by chunk, from A_prev
                                          (kept by the graph anyway) instead of being kept
    dA_prev = W @ dZ for every window, summed back onto the pixels each window covered.
              Stride 1, C_out >= 2 C_in: one product G = W dZ^T, then KH*KW shifted slab adds
              on a flat layout (fold). Other stride 1: the forward convolution applied to dZ
              padded by d(K-1) - p, with the kernel flipped in space and transposed in channels.
              Stride > 1: one product P = dZ W^T for every window and tap, then one strided
              add per tap (col2im). None loops over pixels or examples.

Few channels (C_in <= 8, C_out <= 16, stride 1, one group, KW >= 3) use "banded rows" for all
three instead: B output columns of an output row at a time, with the kernel laid along the block
as a banded matrix T (KH*Q*C_in, B*C_out), Q = B + dw(KW-1):

    Z = rows @ T,   dW = diagonals of rows^T dZ,   dA_prev = KH*ceil(Q/B) strided adds of dZ T^T

where rows[(n, i, b), (u, q, c)] = A_pad[n, i + u*dh, b*B + q, c] (see Conv2d._band_matrix).
The bias rides in the same products (the "bias trick": append a 1 to every input row and b to
the weights, and the affine map is linear): rows get a column of ones and T a last row holding
b once per output column of the block, so Z = [rows, 1] @ [T; b...] has the bias added, and
the ones column's row of [rows, 1]^T dZ is db, summed over the rows (then over the block).
Saving the separate passes over Z and dZ gained 3-4% of a LeNet-5 step (benchmarks/ab.py).
T's zeros times an inf or NaN make NaN, which a row would spread to the block's other outputs:
an input (or dZ, for dA_prev) that is not all finite takes the window-matrix formulas instead.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from cnnlab.ops._util import as_tensor, check_float, check_ndim, check_same_dtype, repeat_row
from cnnlab.ops.activation import relu_array
from cnnlab.ops.geometry import output_size, pair, resolve_padding, windows
from cnnlab.ops.parallel import batch_chunks, map_chunks, sum_parts
from cnnlab.tensor import Function, Tensor

__all__ = ["conv2d"]


# The window matrix of a whole batch is large (M x K values: 38 MB for a 3x3 16->16 layer on
# 64 images of 32x32), so it is never built whole: forward and backward walk the batch in chunks
# whose window matrix is about this many bytes, small enough to stay in the processor's cache
# between the copy that builds it and the product that reads it. Nothing is kept from forward to
# backward but the input itself, which the graph holds anyway; backward builds the windows again.
_CHUNK_BYTES = 1 << 21

# Few channels (C_in <= 8, C_out <= 16, stride 1, no groups, KW >= 3): the window matrix makes
# skinny products (C_out columns) that OpenBLAS runs at a third of its speed, and many small
# copies and adds. There the "banded rows" method is used instead (see Conv2d._band_matrix):
# B output columns at a time, its products are (M/B, KH*Q*C_in) @ (KH*Q*C_in, B*C_out), Q = B +
# dw(KW-1), with (B + KW - 1)/KW times the useful multiplications but a far better shape, and its
# window copy and input-gradient adds are ~KW times smaller. Forward+backward, same process,
# median of 7-9 (2026-11-24, 2 threads): LeNet conv2 6->16 5x5 b128 6.6 -> 4.5 ms, LeNet conv1
# 1->6 5x5 'same' 8.6 -> 7.3, ResNet-20's first 3->16 3x3 b64 10.3 -> 8.7; slower where it is
# not used: 16->16 3x3 (21 -> 25 ms at B = 4, 26 at B = 2), 1x1 64->16 (3.3 -> 7.1 ms).
_BAND_MAX_CIN, _BAND_MAX_COUT, _BAND_MIN_KW = 8, 16, 3


def _chunks(n: int, bytes_per_image: int) -> list:
    """Slices of a batch of n images, each about _CHUNK_BYTES of a per-image buffer."""
    return batch_chunks(n, bytes_per_image, _CHUNK_BYTES)


def _most(chunks: list) -> int:
    """Images in the largest chunk: the buffers a walk over ``chunks`` reuses are this big."""
    return max((c.stop - c.start for c in chunks), default=0)


@functools.lru_cache(maxsize=256)
def _band_divisor(ow: int, kw: int) -> int:
    """The block width B of Conv2d._band_width for an output row of OW and a kernel KW wide."""
    divisors = [d for d in range(1, min(2 * kw - 1, ow) + 1) if ow % d == 0]
    return max(d for d in divisors if d >= kw) if divisors[-1] >= kw else divisors[-1]


class Conv2d(Function):
    """Z = conv(A_prev, W) + b, channels-last; see the module docstring for the formulas."""

    def __init__(self, stride, pads, dilation, groups):
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups

    # ------------------------------------------------------------------ forward
    def forward(self, x, w, b=None):
        n, h, wd, c_in = x.shape
        kh, kw, cg, c_out = w.shape
        g = self.groups
        (sh, sw), (dh, dw), (ph, pw) = self.stride, self.dilation, self.pads
        oh, ow = output_size(h, kh, sh, ph, dh), output_size(wd, kw, sw, pw, dw)
        self.x_shape, self.w, self.out_hw = x.shape, w, (oh, ow)
        self.x = x if self.needs_grad[1] else None  # the cache for dW: windows are rebuilt from it
        z = np.empty((n, oh, ow, c_out), dtype=x.dtype)  # (N, OH, OW, C_out)
        self.band = self._band_width(x)
        if self.band:
            # (KH*Q*C_in, B*C_out), with a bias its last row b along the block: the bias trick
            self.t = t2 = self._band_matrix(b)  # kept for dA_prev (its first KH*Q*C_in rows)

            def band_share(chunks):  # each chunk writes its own images of z
                for chunk, rows in self._rows_by_chunk(x, chunks, ones=b is not None):
                    zc = z[chunk].reshape(-1, t2.shape[1])  # (Mc/B, B*C_out), a view into z
                    np.matmul(rows, t2, out=zc)  # (Mc/B, KH*Q*C_in [+ 1]) @ T: bias added

            map_chunks(band_share, self._band_chunks(n))
            return z
        if g == 1:
            w2 = w.reshape(kh * kw * cg, c_out)  # (K, C_out)
        else:
            wg = w.reshape(kh * kw * cg, g, c_out // g).transpose(1, 0, 2)  # (G, K, Og)

        def share(chunks):  # each chunk writes its own images of z
            for chunk, cols in self._cols_by_chunk(x, chunks):  # (Mc, K), groups: (G, Mc, K)
                zc = z[chunk].reshape(-1, c_out)  # (Mc, C_out), a view into z
                if g == 1:
                    np.matmul(cols, w2, out=zc)  # (Mc, K) @ (K, C_out)
                else:
                    zg = np.matmul(cols, wg)  # (G, Mc, Og)
                    zc[...] = zg.transpose(1, 0, 2).reshape(-1, c_out)  # group g's filters

        map_chunks(share, self._batch_chunks(n))
        self._add_bias(z, b)
        return z

    # ------------------------------------------------------------------ inference, prepared
    def prepared(self, x_shape: tuple, w: np.ndarray, b=None, relu: bool = False):
        """``run(x) -> Z`` (then max(Z, 0) with ``relu``) for inputs of ``x_shape`` and these
        fixed weights: inference only (no backward), for :class:`cnnlab.nn.Predictor`.

        The forward above, with its per-call set-up done once: the kernel matrix (W as (K,
        C_out), or the banded T), the bias laid along an image row, the zero-bordered input
        buffer and its window view, the window matrix. A call then copies the input into the
        buffer's interior, copies the windows, makes one product and adds the bias: a few
        NumPy calls, which is what a batch-1 layer costs. Where the batch needs several chunks
        (or the layer has groups, or one input channel without the banded method) it runs the
        forward above, as does a banded call on an input holding an inf or NaN (see the module
        docstring). The buffers are reused: one call at a time.
        """
        n, h, wd, c_in = x_shape
        kh, kw, cg, c_out = w.shape
        (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = self.stride, self.dilation, self.pads
        oh, ow = output_size(h, kh, sh, (pt, pb), dh), output_size(wd, kw, sw, (pl, pr), dw)
        self.x_shape, self.w, self.out_hw = x_shape, w, (oh, ow)
        self.needs_grad = (False, False, False)
        self.band = self._band_width()
        chunks = self._band_chunks(n) if self.band else self._batch_chunks(n)

        def run_forward(x):
            z = self.forward(x, w, b)
            return relu_array(z, out=z) if relu else z

        if len(chunks) != 1 or self.groups != 1 or (c_in == 1 and not self.band):
            return run_forward
        if self.band:  # rows (N*OH*OW/B, KH*Q*C_in) @ T (KH*Q*C_in, B*C_out)
            q = self.band + dw * (kw - 1)
            mat = self._band_matrix()
            kernel, stride, dilation = (kh, q), (1, self.band), (dh, 1)
        else:  # cols (N*OH*OW, K) @ W (K, C_out)
            mat = w.reshape(kh * kw * cg, c_out)
            kernel, stride, dilation = (kh, kw), self.stride, self.dilation
        padded = bool(pt or pb or pl or pr)
        x_pad = np.zeros((n, h + pt + pb, wd + pl + pr, c_in), dtype=w.dtype) if padded else None
        win = windows(np.empty(x_shape, w.dtype) if x_pad is None else x_pad, kernel, stride,
                      dilation)  # the padded buffer's windows (unpadded: made per call, of x)
        buf = np.empty(win.shape, dtype=w.dtype)
        lhs = buf.reshape(-1, mat.shape[0])  # the window (or row) matrix
        bias_row = None if b is None else repeat_row(b, ow)  # (OW*C_out,)

        band = self.band

        def run(x):
            if band and not np.isfinite(x).all():  # as in forward: the window matrix instead
                return run_forward(x)
            if padded:
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

        return run

    @staticmethod
    def _add_bias(z, b):
        if b is not None:
            # b repeated along an image row: the add then runs over whole rows of OW*C_out
            # values (broadcasting b over (M, C_out) runs over rows of only C_out values)
            n, oh, ow, c_out = z.shape
            z_rows = z.reshape(n * oh, ow * c_out)  # (N*OH, OW*C_out), a view
            z_rows += repeat_row(b, ow)

    # ------------------------------------------------------------------ banded rows
    # Few channels: a block of B output columns of one output row reads KH input rows of Q
    # pixels; the kernel laid along the block (T, below) turns the whole block into one row of
    # one product. Z = rows @ T, dW from rows^T dZ, dA_prev from dZ T^T.
    def _band_width(self, x=None) -> int:
        """B, the output columns per block of the banded method, or 0 where it is not used:
        also for an input ``x`` holding an inf or NaN, which T's zeros would turn into NaN
        (0 * inf) and spread to outputs whose windows do not hold it (the window matrix keeps
        each window apart).

        B divides OW, so blocks tile the row: the largest divisor in [KW, 2 KW) (wasted
        multiplications under (3 KW - 1)/KW, blocks long enough for a good product), else the
        largest up to 2 KW. Measured (fwd+bwd, new/old time): LeNet conv2 (OW 10) B = 2 / 5 /
        10: 0.83 / 0.68 / 0.60-0.70, and in one process 5.86 / 4.99 / 5.50 ms; conv1 (OW 28)
        B = 4 / 7 / 28: 1.04 / 0.85 / 0.76; 3->16 3x3 (OW 32) B = 2 / 4 / 32: 0.98 / 0.84 / 1.44.
        """
        kh, kw, c_in, c_out = self.w.shape
        if (self.stride != (1, 1) or self.groups != 1 or c_in > _BAND_MAX_CIN
                or c_out > _BAND_MAX_COUT or kw < _BAND_MIN_KW
                or (x is not None and not np.isfinite(x).all())):
            return 0
        return _band_divisor(self.out_hw[1], kw)

    def _band_matrix(self, b=None) -> np.ndarray:
        """T (KH*Q*C_in, B*C_out), the kernel laid along a block of B output columns.

            T[u, q, c, j, o] = W[u, v, c, o]  where q = j + v*dw (else 0),  Q = B + dw(KW-1)

        so that a block's output row is one product of its input rows with T:

            Z[n, i, b*B + j, o] = sum_{u, q, c} A_pad[n, i + u*dh, b*B + q, c] T[u, q, c, j, o]

        With a bias b, one more row T[KH*Q*C_in, (j, o)] = b[o], for rows with a column of ones.
        """
        kh, kw, c_in, c_out = self.w.shape
        bw, dw = self.band, self.dilation[1]
        q = bw + dw * (kw - 1)
        k = kh * q * c_in
        flat = np.zeros((k + (b is not None)) * bw * c_out, dtype=self.w.dtype)
        t = flat[: k * bw * c_out].reshape(kh, q, c_in, bw, c_out)  # (KH, Q, C_in, B, C_out)
        s0, s1, s2, s3, s4 = t.strides
        # taps[u, v, c, j, o] is T[u, j + v*dw, c, j, o]: every output column's taps, one view
        taps = np.ndarray((kh, kw, c_in, bw, c_out), t.dtype, buffer=flat,
                          strides=(s0, dw * s1, s2, s1 + s3, s4))
        taps[...] = self.w[:, :, :, None, :]
        if b is not None:
            flat[k * bw * c_out :] = repeat_row(b, bw)  # b[o] at every (j, o)
        return flat.reshape(-1, bw * c_out)

    def _band_chunks(self, n: int) -> list:
        """Slices of the batch whose banded row matrix is about _CHUNK_BYTES (>= one image)."""
        kh, kw, c_in, _ = self.w.shape
        oh, ow = self.out_hw
        q = self.band + self.dilation[1] * (kw - 1)
        return _chunks(n, oh * (ow // self.band) * kh * q * c_in * self.w.itemsize)

    def _rows_by_chunk(self, x: np.ndarray, chunks: list, ones: bool = False):
        """Yield (chunk, rows) for each of the given batch chunks, rows (Mc/B, KH*Q*C_in):

            rows[(n, i, b), (u, q, c)] = A_pad[n, i + u*dh, b*B + q, c]

        the KH input rows (each Q pixels wide) that block b of output row i reads; with
        ``ones``, one more column of ones (for the bias). Like _cols_by_chunk, one padded buffer
        and one rows buffer serve every chunk.
        """
        c_in = x.shape[3]
        kh, kw, _, _ = self.w.shape
        (oh, ow), bw = self.out_hw, self.band
        q = bw + self.dilation[1] * (kw - 1)
        k_taps = kh * q * c_in
        store = np.empty((_most(chunks) * oh * (ow // bw), k_taps + ones), dtype=x.dtype)
        if ones:
            store[:, k_taps] = 1  # written once: the copies below leave this column alone
        row, item = store.strides
        # the tap columns of the rows as (k, OH, OW/B, KH, Q, C_in), like the windows below
        tap_strides = (oh * (ow // bw) * row, (ow // bw) * row, row, q * c_in * item,
                       c_in * item, item)
        # (k, OH, OW/B, KH, Q, C_in) views: blocks B apart along the row, taps dh apart down it
        for chunk, k, src in self._padded_windows(x, chunks, (kh, q), (1, bw),
                                                  (self.dilation[0], 1)):
            rows = store[: k * oh * (ow // bw)]  # (Mc/B, KH*Q*C_in [+ 1])
            taps = np.ndarray(src.shape, store.dtype, buffer=store, strides=tap_strides)
            taps[...] = src  # the copy of the rows
            yield chunk, rows

    def _band_backward(self, gy: np.ndarray, need_w: bool, need_x: bool, need_b: bool):
        """(dW, dA_prev, db) by the banded method, in one walk over the batch chunks: each
        chunk's dZ serves all while it is in cache, and the threads are woken once.

        dW: S = rows^T dZ, then its diagonals,

            S[u, q, c, j, o] = sum_{n, i, b} rows[(n, i, b), (u, q, c)] dZ[n, i, b*B + j, o]
            dW[u, v, c, o] = sum_j S[u, j + v*dw, c, j, o]

        db: with dW, the row of S that the ones column of rows makes, sum_{n,i,b} dZ[n, i,
        b*B + j, o], summed over j; without dW, a sum of dZ (_bias_grad).
        dA_prev: one product Y = dZ T^T a chunk, then KH*ceil(Q/B) strided adds
        (_band_input_grad_chunk).
        """
        if need_x and not np.isfinite(gy).all():
            # as in forward: T^T's zeros would spread an inf or NaN of dZ to pixels whose
            # windows never met it; the window-matrix formulas of _input_grad keep it in place
            gw, _, gb = self._band_backward(gy, need_w, False, need_b)
            return gw, self._input_grad(gy), gb
        kh, kw, c_in, c_out = self.w.shape
        bw, dw = self.band, self.dilation[1]
        q = bw + dw * (kw - 1)
        k_taps = kh * q * c_in
        ones = need_w and need_b  # db from S's last row
        gx = np.empty(self.x_shape, dtype=gy.dtype) if need_x else None  # (N, H, W, C_in)

        def share(chunks):  # this share's part of S; its chunks' images of gx
            s = np.zeros((k_taps + ones, bw * c_out), dtype=gy.dtype) if need_w else None
            pairs = (self._rows_by_chunk(self.x, chunks, ones) if need_w
                     else ((c, None) for c in chunks))
            for chunk, rows in pairs:  # rows (Mc/B, KH*Q*C_in [+ 1])
                gy_rows = gy[chunk].reshape(-1, bw * c_out)  # (Mc/B, B*C_out)
                if need_w:
                    s += rows.T @ gy_rows  # (KH*Q*C_in [+ 1], B*C_out)
                if need_x:
                    self._band_input_grad_chunk(gy_rows, gx[chunk])
            return s

        parts = map_chunks(share, self._band_chunks(gy.shape[0]))
        gb = self._bias_grad(gy) if need_b and not ones else None
        if not need_w:
            return None, gx, gb
        s = sum_parts(parts)  # (KH*Q*C_in [+ 1], B*C_out)
        if ones:
            gb = s[k_taps].reshape(bw, c_out).sum(axis=0)  # (C_out,)
        s = s[:k_taps].reshape(kh, q, c_in, bw, c_out)  # the first rows: still contiguous
        st = s.strides
        diag = np.lib.stride_tricks.as_strided(  # diag[u, v, c, j, o] = S[u, j + v*dw, c, j, o]
            s, (kh, kw, c_in, bw, c_out), (st[0], dw * st[1], st[2], st[1] + st[3], st[4]),
            writeable=False,
        )
        return diag.sum(axis=3), gx, gb

    def _band_input_grad_chunk(self, gy_rows: np.ndarray, gx: np.ndarray) -> None:
        """dA_prev of a chunk of k images into gx (k, H, W, C_in): Y = dZ T^T, then the adds

            Y[(n, i, b), (u, q, c)] = sum_{j, o} dZ[n, i, b*B + j, o] T[u, q, c, j, o]
            dA_pad[n, i + u*dh, b*B + q, c] += Y[(n, i, b), (u, q, c)]   for every u, b

        Blocks overlap (Q > B) but blocks P = ceil(Q/B) apart do not: the blocks of one class r
        (r, r + P, ...) are added with one strided view of dA_pad, its cells disjoint.
        """
        k, h, wd, c_in = gx.shape
        kh, kw, _, c_out = self.w.shape
        bw, (dh, dw), ((pt, pb), (pl, pr)) = self.band, self.dilation, self.pads
        oh, ow = self.out_hw
        nb, q = ow // bw, bw + dw * (kw - 1)
        hp, wp = h + pt + pb, wd + pl + pr
        classes = -(-q // bw)  # P
        t = self.t[: kh * q * c_in]  # T without its bias row
        y = (gy_rows @ t.T).reshape(k, oh, nb, kh, q * c_in)  # Y, (k, OH, OW/B, KH, Q*C_in)
        if (hp, wp) == (h, wd):  # no padding: accumulate straight into gx
            gp = gx.reshape(k, hp, wp * c_in)  # a view
            gp[...] = 0
        else:
            gp = np.zeros((k, hp, wp * c_in), dtype=gx.dtype)  # dA_pad on rows of Wp*C_in
        (s0, s1, _), item = gp.strides, gp.itemsize
        for u in range(kh):
            for r in range(min(classes, nb)):
                blocks = y[:, :, r::classes, u]  # (k, OH, blocks of class r, Q*C_in)
                target = np.ndarray(  # the class's blocks in dA_pad: rows u*dh.., columns r*B..
                    blocks.shape, gp.dtype, buffer=gp, offset=u * dh * s1 + r * bw * c_in * item,
                    strides=(s0, s1, classes * bw * c_in * item, item),
                )
                target += blocks
        if (hp, wp) != (h, wd):
            gx[...] = gp.reshape(k, hp, wp, c_in)[:, pt : pt + h, pl : pl + wd]

    def _batch_chunks(self, n: int) -> list:
        """Slices of the batch whose window matrix is about _CHUNK_BYTES (at least one image).

        The input gradient's buffers (fold, col2im) are about the size of the window matrix,
        so the same chunks serve backward.
        """
        kh, kw, cg, _ = self.w.shape
        oh, ow = self.out_hw
        return _chunks(n, oh * ow * kh * kw * cg * self.w.itemsize)  # bytes of one image's windows

    def _padded_windows(self, x: np.ndarray, chunks: list, kernel, stride, dilation):
        """Yield (chunk, k, windows) per batch chunk: the strided window view of the chunk's k
        padded images, (k, OH', OW', KH', KW', C_in) for the given kernel, stride, dilation.

        Without padding the views are of x itself; with it, one zero-bordered buffer holds each
        chunk in turn (only its interior is written), so a view is valid until the next one.
        """
        if not chunks:  # an empty batch
            return
        n, h, wd, c_in = x.shape
        (pt, pb), (pl, pr) = self.pads
        if pt or pb or pl or pr:
            x_pad = np.zeros((_most(chunks), h + pt + pb, wd + pl + pr, c_in), dtype=x.dtype)
        else:
            x_pad = x  # no padding: the windows of the whole batch, sliced per chunk
        win = windows(x_pad, kernel, stride, dilation)  # (., OH', OW', KH', KW', C_in)
        for chunk in chunks:
            k = chunk.stop - chunk.start  # images in this chunk
            if x_pad is x:
                yield chunk, k, win[chunk]  # a view
            else:
                x_pad[:k, pt : pt + h, pl : pl + wd] = x[chunk]  # the interior only
                yield chunk, k, win[:k]

    def _cols_by_chunk(self, x: np.ndarray, chunks: list):
        """Yield (chunk, cols) for each of the given batch chunks: the chunk's window matrix,
        row (n, i, j) holding window (i, j) of image n.

        cols is (Mc, K), Mc = images in the chunk * OH * OW, columns ordered (u, v, c) like
        W.reshape(K, C_out); with groups (G, Mc, K), group g's channels only. One padded buffer
        and one cols buffer, sized for the largest chunk, serve every chunk (the padding border
        stays zero), so a cols is valid only until the next one is asked for.
        """
        c_in = x.shape[3]
        kh, kw, cg, _ = self.w.shape
        g, (oh, ow) = self.groups, self.out_hw
        store = np.empty(_most(chunks) * oh * ow * kh * kw * c_in, dtype=x.dtype)
        # (k, OH, OW, KH, KW, C_in) views of the chunk's windows
        for chunk, k, src in self._padded_windows(x, chunks, (kh, kw), self.stride,
                                                  self.dilation):
            rows = k * oh * ow
            flat = store[: rows * kh * kw * c_in]  # this chunk's part, contiguous
            buf = flat.reshape((kh, kw, rows) if c_in == 1 and g == 1 else (g, rows, kh * kw * cg))
            if g == 1 and c_in == 1:
                # one channel (a grayscale first layer): copying tap by tap is ~4x faster than
                # copying the 6-D view, whose innermost run is a single number
                taps = buf.reshape(kh, kw, k, oh, ow)  # (KH, KW, k, OH, OW)
                for u in range(kh):
                    for v in range(kw):
                        taps[u, v] = src[:, :, :, u, v, 0]
                yield chunk, buf.reshape(kh * kw, -1).T  # (Mc, K) as a transposed view
            elif g == 1:
                buf.reshape(k, oh, ow, kh, kw, c_in)[...] = src  # the copy of the windows
                yield chunk, buf[0]  # (Mc, K)
            else:
                src = src.reshape(k, oh, ow, kh, kw, g, cg).transpose(5, 0, 1, 2, 3, 4, 6)
                buf.reshape(g, k, oh, ow, kh, kw, cg)[...] = src  # (G, k, OH, OW, KH, KW, Cg)
                yield chunk, buf  # (G, Mc, K)

    # ------------------------------------------------------------------ backward
    def backward(self, gy):
        kh, kw, cg, c_out = self.w.shape
        g, og = self.groups, c_out // self.groups
        gx = gw = gb = None
        need_b = len(self.needs_grad) > 2 and self.needs_grad[2]
        if self.band:  # few channels: dW, dA_prev (and db) together
            gw, gx, gb = self._band_backward(gy, self.needs_grad[1], self.needs_grad[0], need_b)
            return gx, gw, gb
        if need_b:
            gb = self._bias_grad(gy)
        if self.needs_grad[1]:
            # dW = cols^T dZ, summed chunk by chunk over windows built again from the input
            def share(chunks):  # this share's part of dW
                gw = np.zeros((g, kh * kw * cg, og), dtype=gy.dtype)  # (G, K, Og)
                for chunk, cols in self._cols_by_chunk(self.x, chunks):  # (Mc, K) / (G, Mc, K)
                    gy2 = gy[chunk].reshape(-1, c_out)  # (Mc, C_out)
                    if g == 1:
                        gw[0] += cols.T @ gy2  # (K, Mc) @ (Mc, C_out)
                    else:
                        gyg = gy2.reshape(-1, g, og).transpose(1, 0, 2)  # (G, Mc, Og)
                        gw += np.matmul(cols.transpose(0, 2, 1), gyg)  # (G, K, Mc) @ (G, Mc, Og)
                return gw

            gw = sum_parts(map_chunks(share, self._batch_chunks(gy.shape[0])))  # (G, K, Og)
            gw = gw.transpose(1, 0, 2).reshape(self.w.shape)  # (KH, KW, Cg, C_out)
        if self.needs_grad[0]:
            gx = self._input_grad(gy)  # (N, H, W, C_in)
        return gx, gw, gb

    @staticmethod
    def _bias_grad(gy: np.ndarray) -> np.ndarray:
        """db = sum of dZ over every axis but the channels: over image rows first (N*OH,
        OW*C_out), whose long rows NumPy adds fast, then over the OW groups. (C_out,)"""
        ow, c_out = gy.shape[2:]
        return gy.reshape(-1, ow * c_out).sum(axis=0).reshape(ow, c_out).sum(axis=0)

    def _input_grad(self, gy: np.ndarray) -> np.ndarray:
        """dA_prev (N, H, W, C_in) by whichever of three equal formulas is fastest here (few
        channels take the banded rows, in _band_backward, unless x or dZ holds an inf or NaN).

        Stride 1: the fold writes KH*KW*C_in values per position, the flipped-kernel
        convolution copies KH*KW*C_out: the fold when C_out >= 2 C_in, else the convolution.
        Stride > 1: the scatter of each tap (col2im), whose product is no bigger than the
        forward's. (Measured in benchmarks/ops.py and benchmarks/run.py.) The convolution walks
        the batch in chunks itself; the fold and col2im are given one chunk at a time.
        """
        c_in, c_out = self.x_shape[3], self.w.shape[3]
        if self.stride == (1, 1) and (self.groups > 1 or 2 * c_in > c_out):
            return self._input_grad_flip(gy)
        by_chunk = self._input_grad_fold if self.stride == (1, 1) else self._input_grad_col2im
        gx = np.empty(self.x_shape, dtype=gy.dtype)  # (N, H, W, C_in)

        def share(chunks):  # each chunk writes its own images of gx
            for chunk in chunks:
                gx[chunk] = by_chunk(gy[chunk])  # (k, H, W, C_in)

        map_chunks(share, self._batch_chunks(gy.shape[0]))
        return gx

    def _input_grad_fold(self, gy: np.ndarray) -> np.ndarray:
        """dA_prev for stride 1: one product for every tap, then KH*KW shifted adds (col2im).

        Every output position (i, j) sends W[u, v] @ dZ[n, i, j] to input pixel
        (i + u*dh, j + v*dw). Lay dZ out on the padded input's row width Wp (zero columns
        after OW): then pixel (i + u*dh, j + v*dw) sits at flat index (i*Wp + j) + off(u, v)
        with off(u, v) = u*dh*Wp + v*dw, the same shift for every position. So one product
        G = W @ dZ^T gives every tap's contribution, and each tap is added to the flat,
        channel-major gradient as one contiguous slab — no loop over pixels.
        """
        n, (_, h, wd, c_in) = gy.shape[0], self.x_shape  # n: this chunk's images
        kh, kw, cg, c_out = self.w.shape
        (dh, dw), ((pt, pb), (pl, pr)) = self.dilation, self.pads
        oh, ow = self.out_hw
        hp, wp = h + pt + pb, wd + pl + pr
        gyp = np.zeros((n, oh, wp, c_out), dtype=gy.dtype)  # dZ on rows of width Wp
        gyp[:, :, :ow, :] = gy
        length = oh * wp  # flat positions per example
        # G[u, v, c, (n, i, j)] = sum_o W[u, v, c, o] dZ[n, i, j, o]
        prod = self.w.reshape(kh * kw * c_in, c_out) @ gyp.reshape(n * length, c_out).T
        prod = prod.reshape(kh, kw, c_in, n, length)  # (KH, KW, C_in, N, OH*Wp)
        flat = np.zeros((c_in, n, hp * wp + dw * (kw - 1)), dtype=gy.dtype)  # (C_in, N, Hp*Wp+)
        for u in range(kh):
            for v in range(kw):
                off = u * dh * wp + v * dw
                flat[:, :, off : off + length] += prod[u, v]  # (C_in, N, OH*Wp) slab
        gx_pad = flat[:, :, : hp * wp].reshape(c_in, n, hp, wp)  # (C_in, N, Hp, Wp)
        gx = gx_pad[:, :, pt : pt + h, pl : pl + wd].transpose(1, 2, 3, 0)  # (N, H, W, C_in)
        return np.ascontiguousarray(gx)

    def _input_grad_col2im(self, gy: np.ndarray) -> np.ndarray:
        """dA_prev for any stride: one product for every tap, then one strided add per tap.

        Window (i, j) covered padded pixel (i*sh + u*dh, j*sw + v*dw) through tap (u, v); it
        sends back P[n, i, j, u, v] = W[u, v] @ dZ[n, i, j]. All taps at once are one product
        P = dZ @ W^T (per group), and tap (u, v) of every window lands on the strided grid of
        rows u*dh, u*dh + sh, ... and columns v*dw, v*dw + sw, ...: KH*KW adds, no pixel loop.
        """
        n, (_, h, wd, c_in) = gy.shape[0], self.x_shape  # n: this chunk's images
        kh, kw, cg, c_out = self.w.shape
        g, og = self.groups, c_out // self.groups
        (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = self.stride, self.dilation, self.pads
        oh, ow = self.out_hw
        gyg = gy.reshape(n * oh * ow, g, og).transpose(1, 0, 2)  # (G, M, Og)
        wg = self.w.reshape(kh * kw * cg, g, og).transpose(1, 2, 0)  # (G, Og, K)
        prod = np.matmul(gyg, wg)  # (G, M, K): P for every window and tap
        prod = prod.reshape(g, n, oh, ow, kh, kw, cg).transpose(1, 2, 3, 4, 5, 0, 6)
        prod = prod.reshape(n, oh, ow, kh, kw, c_in)  # (N, OH, OW, KH, KW, C_in)
        gx_pad = np.zeros((n, h + pt + pb, wd + pl + pr, c_in), dtype=gy.dtype)  # (N, Hp, Wp, C_in)
        for u in range(kh):
            for v in range(kw):
                rows = slice(u * dh, u * dh + (oh - 1) * sh + 1, sh)  # OH rows
                cols = slice(v * dw, v * dw + (ow - 1) * sw + 1, sw)  # OW columns
                gx_pad[:, rows, cols, :] += prod[:, :, :, u, v, :]  # (N, OH, OW, C_in)
        return gx_pad[:, pt : pt + h, pl : pl + wd, :]  # (N, H, W, C_in)

    def _input_grad_flip(self, gy: np.ndarray) -> np.ndarray:
        """dA_prev for stride 1 as a convolution of dZ with the flipped, transposed kernel.

        Input pixel (p, q) met output (i, j) through tap (u, v) when p = i + u*dh - pt, so

            dA_prev[n, p, q, c] = sum_{u', v', o} dZ_pad[n, p + u'dh, q + v'dw, o] Wt[u', v', o, c]

        with Wt[u', v', o, c] = W[KH-1-u', KW-1-v', c, o] (per group) and dZ padded by
        d(K-1) - p on each side: the forward pass above, run on dZ (a negative padding, when
        p > d(K-1), crops dZ instead).
        """
        kh, kw, cg, c_out = self.w.shape
        g, (dh, dw), ((pt, pb), (pl, pr)) = self.groups, self.dilation, self.pads
        top, bottom = dh * (kh - 1) - pt, dh * (kh - 1) - pb
        left, right = dw * (kw - 1) - pl, dw * (kw - 1) - pr
        oh, ow = gy.shape[1:3]
        gy = gy[:, max(-top, 0) : oh - max(-bottom, 0), max(-left, 0) : ow - max(-right, 0)]
        wt = self.w[::-1, ::-1].reshape(kh, kw, cg, g, c_out // g)  # (KH, KW, Cg, G, Og) flipped
        wt = wt.transpose(0, 1, 4, 3, 2).reshape(kh, kw, c_out // g, g * cg)  # (KH, KW, Og, C_in)
        pads = ((max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0)))
        op = Conv2d((1, 1), pads, self.dilation, g)
        op.needs_grad = (False, False)
        return op.forward(gy, wt)  # (N, H, W, C_in)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution of channels-last images with HWIO filters.

    Args:
        x: input A_prev, (N, H, W, C_in), float32 or float64.
        w: filters, (KH, KW, C_in // groups, C_out).
        b: bias (C_out,) or None.
        stride: s, an int or (sh, sw), >= 1.
        padding: 'valid', 'same' (output ceil(H / s); extra row/column at the bottom/right when
            the total is odd), 'full' (d(K-1) each side), an int or (ph, pw).
        dilation: d, an int or (dh, dw), >= 1 (1 means none).
        groups: G; C_in and C_out must be divisible by G (G = C_in is depthwise).

    Returns:
        Z, (N, OH, OW, C_out).

    Shape:
        OH = floor((H + p_top + p_bottom - d(KH - 1) - 1) / s) + 1, likewise OW.

    Gradients (gy = dZ):
        db = sum over N, OH, OW of dZ;  dW = cols^T dZ;  dA_prev = col2im(dZ W^T), which for
        stride 1 is also conv(dZ padded by d(K-1) - p, W flipped in space, transposed).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> x = cl.tensor(np.zeros((1, 6, 6, 3)))
    >>> F.conv2d(x, cl.tensor(np.zeros((3, 3, 3, 2)))).shape
    (1, 4, 4, 2)
    """
    x, w = as_tensor(x), as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_float("conv2d", "x", x)
    check_float("conv2d", "w", w)
    check_ndim("conv2d", "x", x, 4, "(N, H, W, C_in)")
    check_ndim("conv2d", "w", w, 4, "(KH, KW, C_in // groups, C_out)")
    check_same_dtype("conv2d", x=x, w=w, b=b)
    stride = pair(stride, "stride", "conv2d")
    dilation = pair(dilation, "dilation", "conv2d")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int; received groups={groups!r}")
    groups = int(groups)
    n, h, wd, c_in = x.shape
    kh, kw, cg, c_out = w.shape
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"conv2d: groups={groups} must divide both C_in={c_in} and C_out={c_out}; "
            f"received x.shape={x.shape}, w.shape={w.shape}"
        )
    if cg * groups != c_in:
        raise ValueError(
            f"conv2d: x has {c_in} channels but w expects {cg * groups} "
            f"(w is (KH, KW, C_in // groups, C_out) = {w.shape}, groups={groups}); "
            f"received x.shape={x.shape}"
        )
    if b is not None and b.shape != (c_out,):
        raise ValueError(
            f"conv2d: b must have shape ({c_out},) to match w.shape={w.shape}; "
            f"received b.shape={b.shape}"
        )
    pads = resolve_padding(padding, (h, wd), (kh, kw), stride, dilation, "conv2d")
    oh = output_size(h, kh, stride[0], pads[0], dilation[0])
    ow = output_size(wd, kw, stride[1], pads[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"conv2d: the kernel ({kh}x{kw}, dilation {dilation}) spans "
            f"{dilation[0] * (kh - 1) + 1}x{dilation[1] * (kw - 1) + 1} pixels, larger than the "
            f"padded input {h + sum(pads[0])}x{wd + sum(pads[1])}; received x.shape={x.shape}, "
            f"w.shape={w.shape}, padding={padding!r}"
        )
    op = Conv2d(stride, pads, dilation, groups)
    return op.apply(x, w) if b is None else op.apply(x, w, b)
