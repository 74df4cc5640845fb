"""Banded rows: few channels (C_in <= 8, C_out <= 16), stride 1, one group, KW >= 3.

There the window matrix makes skinny products (C_out columns) that OpenBLAS runs at a third of
its speed, and many small copies and adds. Banded rows take B output columns of an output row
at a time, with the kernel laid along the block as a banded matrix T (KH*Q*C_in, B*C_out),
Q = B + dw(KW-1):

    Z = rows @ T,   dW = diagonals of rows^T dZ,   dA_prev = KH*ceil(Q/B) strided adds of dZ T^T

where rows[(n, i, b), (u, q, c)] = A_pad[n, i + u*dh, b*B + q, c]. Its products have
(B + KW - 1)/KW times the useful multiplications but a far better shape, and its window copy and
input-gradient adds are ~KW times smaller (measurements: docs/PERFORMANCE.md).

The bias rides in the same products (the "bias trick": append a 1 to every input row and b to
the weights): rows get a column of ones and T a last row holding b once per output column of
the block, so Z = [rows, 1] @ [T; b...], and the ones column's row of [rows, 1]^T dZ is db.
T's zeros times an inf or NaN make NaN, which a row would spread to the block's other outputs:
an input (or dZ, for dA_prev) that is not all finite takes the window matrix instead.
"""

from __future__ import annotations

import functools

import numpy as np

from cnnlab.kernels.base import Kernel, bias_grad, chunks, most
from cnnlab.kernels.window import Window, padded_windows
from cnnlab.ops._util import repeat_row
from cnnlab.ops.parallel import map_chunks, sum_parts

__all__ = ["Banded", "band_width"]

MAX_CIN, MAX_COUT, MIN_KW = 8, 16, 3


@functools.lru_cache(maxsize=256)
def band_width(ow: int, kw: int) -> int:
    """B, the output columns of a block: B divides OW, so blocks tile the row; the largest
    divisor in [KW, 2 KW) (wasted multiplications under (3 KW - 1)/KW, blocks long enough for
    a good product), else the largest up to 2 KW (measured: docs/PERFORMANCE.md)."""
    divisors = [d for d in range(1, min(2 * kw - 1, ow) + 1) if ow % d == 0]
    return max(d for d in divisors if d >= kw) if divisors[-1] >= kw else divisors[-1]


class Banded(Kernel):
    """Z = rows T, dW from rows^T dZ, dA_prev from dZ T^T (module docstring)."""

    name = "banded"
    keeps = "A_prev (for dW, rows built again), W and T (for dA_prev)"

    @classmethod
    def eligible(cls, geom):
        kh, kw, c_in, c_out = geom.w_shape
        return (geom.stride == (1, 1) and geom.groups == 1 and c_in <= MAX_CIN
                and c_out <= MAX_COUT and kw >= MIN_KW)

    def __init__(self, geom):
        super().__init__(geom)
        self.band = band_width(geom.out_hw[1], geom.w_shape[1])

    def accepts(self, x):
        return bool(np.isfinite(x).all())

    def forward(self, x, w, b, need_w):
        self.w, self.x = w, x if need_w else None
        z = np.empty(self.geom.out_shape, dtype=x.dtype)  # (N, OH, OW, C_out)
        # (KH*Q*C_in, B*C_out), with a bias its last row b along the block: the bias trick
        self.t = t2 = self.band_matrix(w, b)  # kept for dA_prev (its first KH*Q*C_in rows)

        def share(parts):  # each chunk writes its own images of z
            for chunk, rows in self.rows_by_chunk(x, parts, ones=b is not None):
                zc = z[chunk].reshape(-1, t2.shape[1])  # (Mc/B, B*C_out), a view into z
                np.matmul(rows, t2, out=zc)  # (Mc/B, KH*Q*C_in [+ 1]) @ T: bias added

        map_chunks(share, self.batch_chunks(x.shape[0]))
        return z

    def band_matrix(self, w, b=None) -> np.ndarray:
        """T (KH*Q*C_in [+ 1], B*C_out), the kernel laid along a block of B output columns:

            T[u, q, c, j, o] = W[u, v, c, o]  where q = j + v*dw (else 0),  Q = B + dw(KW-1)

        so that Z[n, i, b*B + j, o] = sum_{u, q, c} A_pad[n, i + u*dh, b*B + q, c] T[u, q, c,
        j, o]. With a bias b, one more row T[KH*Q*C_in, (j, o)] = b[o].
        """
        kh, kw, c_in, c_out = w.shape
        bw, dw = self.band, self.geom.dilation[1]
        q = bw + dw * (kw - 1)
        k = kh * q * c_in
        flat = np.zeros((k + (b is not None)) * bw * c_out, dtype=w.dtype)
        t = flat[: k * bw * c_out].reshape(kh, q, c_in, bw, c_out)  # (KH, Q, C_in, B, C_out)
        s0, s1, s2, s3, s4 = t.strides
        # taps[u, v, c, j, o] is T[u, j + v*dw, c, j, o]: every output column's taps, one view
        taps = np.ndarray((kh, kw, c_in, bw, c_out), t.dtype, buffer=flat,
                          strides=(s0, dw * s1, s2, s1 + s3, s4))
        taps[...] = w[:, :, :, None, :]
        if b is not None:
            flat[k * bw * c_out :] = repeat_row(b, bw)  # b[o] at every (j, o)
        return flat.reshape(-1, bw * c_out)

    def batch_chunks(self, n: int) -> list:
        """Slices of the batch whose row matrix is about CHUNK_BYTES (>= one image)."""
        kh, kw, c_in, _ = self.geom.w_shape
        oh, ow = self.geom.out_hw
        q = self.band + self.geom.dilation[1] * (kw - 1)
        item = np.dtype(self.geom.dtype).itemsize
        return chunks(n, oh * (ow // self.band) * kh * q * c_in * item)

    def rows_by_chunk(self, x, parts, ones=False):
        """Yield (chunk, rows) per batch chunk, rows (Mc/B, KH*Q*C_in [+ 1]):

            rows[(n, i, b), (u, q, c)] = A_pad[n, i + u*dh, b*B + q, c]

        the KH input rows (each Q pixels wide) that block b of output row i reads; with
        ``ones``, one more column of ones (for the bias). One buffer serves every chunk.
        """
        c_in = x.shape[3]
        kh, kw, _, _ = self.geom.w_shape
        (oh, ow), bw = self.geom.out_hw, self.band
        q = bw + self.geom.dilation[1] * (kw - 1)
        k_taps = kh * q * c_in
        store = np.empty((most(parts) * oh * (ow // bw), k_taps + ones), dtype=x.dtype)
        if ones:
            store[:, k_taps] = 1  # written once: the copies below leave this column alone
        row, item = store.strides
        # the tap columns of the rows as (k, OH, OW/B, KH, Q, C_in), like the windows below
        tap_strides = (oh * (ow // bw) * row, (ow // bw) * row, row, q * c_in * item,
                       c_in * item, item)
        # (k, OH, OW/B, KH, Q, C_in) views: blocks B apart along the row, taps dh apart down it
        for chunk, k, src in padded_windows(x, parts, self.geom.pads, (kh, q), (1, bw),
                                            (self.geom.dilation[0], 1)):
            rows = store[: k * oh * (ow // bw)]  # (Mc/B, KH*Q*C_in [+ 1])
            taps = np.ndarray(src.shape, store.dtype, buffer=store, strides=tap_strides)
            taps[...] = src  # the copy of the rows
            yield chunk, rows

    def backward(self, gy, need_x, need_w, need_b):
        """(dA_prev, dW, db) in one walk over the batch chunks: each chunk's dZ serves all
        while it is in cache, and the threads are woken once.

        dW: S = rows^T dZ, then its diagonals, dW[u, v, c, o] = sum_j S[u, j + v*dw, c, j, o].
        db: with dW, the row of S that the ones column makes, summed over j; else a sum of dZ.
        dA_prev: one product Y = dZ T^T a chunk, then KH*ceil(Q/B) strided adds.
        """
        if need_x and not np.isfinite(gy).all():
            # T^T's zeros would spread an inf or NaN of dZ to pixels whose windows never met
            # it; the window matrix keeps it in place
            _, gw, gb = self.backward(gy, False, need_w, need_b)
            window = Window(self.geom)
            window.w = self.w
            return window.input_grad(gy), gw, gb
        kh, kw, c_in, c_out = self.w.shape
        bw, dw = self.band, self.geom.dilation[1]
        q = bw + dw * (kw - 1)
        k_taps = kh * q * c_in
        ones = need_w and need_b  # db from S's last row
        gx = np.empty(self.geom.x_shape, dtype=gy.dtype) if need_x else None  # (N, H, W, C_in)

        def share(parts):  # this share's part of S; its chunks' images of gx
            s = np.zeros((k_taps + ones, bw * c_out), dtype=gy.dtype) if need_w else None
            pairs = (self.rows_by_chunk(self.x, parts, ones) if need_w
                     else ((c, None) for c in parts))
            for chunk, rows in pairs:  # rows (Mc/B, KH*Q*C_in [+ 1])
                gy_rows = gy[chunk].reshape(-1, bw * c_out)  # (Mc/B, B*C_out)
                if need_w:
                    s += rows.T @ gy_rows  # (KH*Q*C_in [+ 1], B*C_out)
                if need_x:
                    self.input_grad_chunk(gy_rows, gx[chunk])
            return s

        parts = map_chunks(share, self.batch_chunks(gy.shape[0]))
        gb = bias_grad(gy) if need_b and not ones else None
        if not need_w:
            return gx, None, gb
        s = sum_parts(parts)  # (KH*Q*C_in [+ 1], B*C_out)
        if ones:
            gb = s[k_taps].reshape(bw, c_out).sum(axis=0)  # (C_out,)
        s = s[:k_taps].reshape(kh, q, c_in, bw, c_out)  # the first rows: still contiguous
        st = s.strides
        diag = np.lib.stride_tricks.as_strided(  # diag[u, v, c, j, o] = S[u, j + v*dw, c, j, o]
            s, (kh, kw, c_in, bw, c_out), (st[0], dw * st[1], st[2], st[1] + st[3], st[4]),
            writeable=False,
        )
        return gx, diag.sum(axis=3), gb

    def input_grad_chunk(self, gy_rows, gx) -> None:
        """dA_prev of a chunk of k images into gx (k, H, W, C_in): Y = dZ T^T, then

            dA_pad[n, i + u*dh, b*B + q, c] += Y[(n, i, b), (u, q, c)]   for every u, b

        Blocks overlap (Q > B) but blocks P = ceil(Q/B) apart do not: the blocks of one class r
        (r, r + P, ...) are added with one strided view of dA_pad, its cells disjoint.
        """
        k, h, wd, c_in = gx.shape
        kh, kw, _, c_out = self.w.shape
        bw, (dh, dw), ((pt, pb), (pl, pr)) = self.band, self.geom.dilation, self.geom.pads
        oh, ow = self.geom.out_hw
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
