"""Winograd along rows, F(4, 3): 3x3 filters, stride 1, no dilation, one group, few channels.

The 1-D form of kernels/winograd.py, along the image width only. A 3x3 convolution is three
1-D convolutions along rows, one per kernel row u, summed:

    Z[n, i, :, o] = sum_u sum_c (A_pad[n, i + u, :, c] *1d W[u, :, c, o])

and each 1-D one, cut into segments of 4 outputs that read 6 inputs (segments overlap by 2),
is F(4, 3): z = A^T [ (G g) (.) (B^T d) ]. With V = B^T d for every 6-wide segment of every
padded input row (rows (n, i', tj) flat, i' over all padded rows) and U[u] = G W[u] (6, C_in,
C_out), output row (n, i) reads input rows (n, i + u): in the flat row order that is a shift of
u * (segments a row), so for each of the 6 positions b

    M[b] = sum_u V[b, rows shifted by u] @ U[u, b]          (rows, C_in) @ (C_in, C_out)

and Z = A^T M. Rows i >= OH of each image (the last two padded rows) compute values that are
dropped. 18 multiplications per 4 outputs instead of 36: 2x fewer; the transforms are a third
of the 2-D form's (one axis, 1.5x the input instead of 2.25x), which is what decides the speed
where channels are few (docs/PERFORMANCE.md). The gradients are the adjoints:

    dZg = A dZ_segment;   dU[u, b] = V[b, shifted by u]^T dZg[b];   dW[u] = G^T dU[u]
    dV[b, shifted by u] += dZg[b] U[u, b]^T;   dA_prev = B dV, added back over the segments

Accuracy, non-finite inputs, odd sizes, chunks: as kernels/winograd.py. In float32, ResNet-20's
3x3 layers measured errors of Z and dA_prev within 1e-6 of the largest exact value (the window
matrix: ~5e-7) and of dW within 3e-6; the 2-D form: 2-6e-6 (tests/kernels/test_winograd.py
bounds both by 1e-4 and by 30x the window matrix's error).
"""

from __future__ import annotations

import numpy as np

from cnnlab.kernels.base import bias_grad, chunks, most, pixels
from cnnlab.kernels.winograd import G, _pixel_rows, _take, _Winograd3x3
from cnnlab.ops.parallel import map_chunks, sum_parts

__all__ = ["WinogradRows"]

M_OUT, A_IN = 4, 6


class WinogradRows(_Winograd3x3):
    """F(4, 3) along rows: M[b] = sum_u V[b, shifted u] U[u, b], Z = A^T M (module docstring)."""

    name = "winograd_rows"
    keeps = "A_prev (for dW: V transformed again), W and U[u] = G W[u]"

    def __init__(self, geom):
        super().__init__(geom)
        (_, h, _, _), ((pt, pb), _) = geom.x_shape, geom.pads
        self.hp = h + pt + pb  # padded rows (OH + 2)
        self.tw = -(-geom.out_hw[1] // M_OUT)  # segments a row

    # ------------------------------------------------------------------ forward
    def forward(self, x, w, b, need_w):
        x = _pixel_rows(x)
        self.w, self.x = w, x if need_w else None
        self.u = u = self.transformed_filters(w)  # (3u, 6b, C_in, C_out)
        z = np.empty(self.geom.out_shape, dtype=x.dtype)  # (N, OH, OW, C_out)

        def share(parts):  # each chunk writes its own images of z
            s = self._scratch(most(parts))
            for chunk in parts:
                self._forward_chunk(x[chunk], u, b, z[chunk], s)

        map_chunks(share, self.batch_chunks(x.shape[0]))
        return z

    def transformed_filters(self, w):
        """U[u] = G W[u], in float64: (3u, 6b, C_in, C_out) in w's dtype."""
        u = np.matmul(G, w.astype(np.float64).reshape(3, 3, -1))  # G along v, per u
        return u.reshape(3, A_IN, *w.shape[2:]).astype(w.dtype)

    def _forward_chunk(self, xc, u, b, zc, s):
        """Z of the chunk's images into zc: V = B^T d, M[b] = sum_u V[b, shifted u] U[u, b]
        (+ the bias at b = 1: A^T e_1 = (1, 1, 1, 1), as in kernels/winograd.py), Z = A^T M."""
        k = xc.shape[0]
        v = self._input_transform(xc, s)  # (6, k*Hp*tw, C_in)
        rows = (k * self.hp - 2) * self.tw  # outputs of every row but the last two
        m = _take(s["m"], (A_IN, k * self.hp * self.tw, u.shape[3]))
        tmp = _take(s["tmp"], (A_IN, rows, u.shape[3]))
        np.matmul(v[:, :rows], u[0], out=m[:, :rows])  # (6, rows, C_in) @ (6, C_in, C_out)
        for shift in (1, 2):  # output row i reads input row i + shift
            lo = shift * self.tw
            np.matmul(v[:, lo : lo + rows], u[shift], out=tmp)
            m[:, :rows] += tmp
        m[:, rows:] = 0  # the last two rows of the last image: computed, dropped
        if b is not None:
            m[1, :rows] += b
        self._output_transform(m, zc, s)

    def _input_transform(self, xc, s):
        """V = B^T d for every 6-wide segment d of every padded row: (6, k*Hp*tw, C_in), rows
        (n, i', tj)."""
        k, h, wd, c = xc.shape
        (pt, _), (pl, _) = self.geom.pads
        hp, tw = self.hp, self.tw
        xp = s["xp"][:k]  # (k, Hp, 4tw + 2, C_in), zero outside the interior
        np.copyto(pixels(xp[:, pt : pt + h, pl : pl + wd]), pixels(xc))
        s0, s1, s2, s3 = xp.strides
        segs = np.lib.stride_tricks.as_strided(  # segs[j, n, i', tj] = xp[n, i', 4tj + j]
            xp, (A_IN, k, hp, tw, c), (s2, s0, s1, M_OUT * s2, s3), writeable=False)
        d = _take(s["d"], (A_IN, k, hp, tw, c))
        np.copyto(pixels(d), pixels(segs))
        v = _take(s["v"], (A_IN, k * hp * tw, c))
        np.matmul(self.bt, d.reshape(A_IN, -1), out=v.reshape(A_IN, -1))  # B^T along j
        return v

    def _output_transform(self, m, zc, s):
        """Z = A^T M for every row, the valid ones (i < OH) written into zc (k, OH, OW, C_out)."""
        k, oh, ow, c_out = zc.shape
        hp, tw = self.hp, self.tw
        y = _take(s["y"], (M_OUT, k * hp * tw, c_out))
        np.matmul(self.at, m.reshape(A_IN, -1), out=y.reshape(M_OUT, -1))
        src = pixels(y.reshape(M_OUT, k, hp, tw, c_out))[:, :, :oh].transpose(1, 2, 3, 0)
        if ow == M_OUT * tw:  # (k, OH, tw, s): straight into z
            np.copyto(pixels(zc).reshape(k, oh, tw, M_OUT), src)
        else:
            full = _take(s["zfull"], (k, oh, tw, M_OUT, c_out))
            np.copyto(pixels(full), src)
            np.copyto(pixels(zc), pixels(full.reshape(k, oh, M_OUT * tw, c_out))[:, :, :ow])

    # ------------------------------------------------------------------ backward
    def _transform_backward(self, gy, need_x, need_w, need_b):
        """dA_prev, dW, db of a finite dZ with contiguous channels (module docstring)."""
        c_in, c_out = self.geom.x_shape[3], self.w.shape[3]
        gx = np.empty(self.geom.x_shape, dtype=gy.dtype) if need_x else None  # (N, H, W, C_in)
        ut = np.ascontiguousarray(self.u.transpose(0, 1, 3, 2)) if need_x else None

        def share(parts):  # this share's part of dU; its chunks' images of gx
            s = self._scratch(most(parts))
            du = np.zeros((3, A_IN, c_in, c_out), dtype=gy.dtype) if need_w else None
            for chunk in parts:
                k = chunk.stop - chunk.start
                rows = (k * self.hp - 2) * self.tw
                zg = self._grad_transform(gy[chunk], s)[:, :rows]  # (6, rows, C_out)
                if need_w:
                    v = self._input_transform(self.x[chunk], s)
                    for shift in range(3):
                        lo = shift * self.tw
                        du[shift] += np.matmul(v[:, lo : lo + rows].transpose(0, 2, 1), zg)
                if need_x:
                    dv = _take(s["v"], (A_IN, k * self.hp * self.tw, c_in))
                    tmp = _take(s["tmp"], (A_IN, rows, c_in))
                    np.matmul(zg, ut[0], out=dv[:, :rows])  # (6, rows, C_out) @ (6, Co, Ci)
                    dv[:, rows:] = 0
                    for shift in (1, 2):
                        lo = shift * self.tw
                        np.matmul(zg, ut[shift], out=tmp)
                        dv[:, lo : lo + rows] += tmp
                    self._input_adjoint(dv, gx[chunk], s)
            return du

        parts = map_chunks(share, self.batch_chunks(gy.shape[0]))
        gw = None
        if need_w:  # dW[u] = G^T dU[u], in float64
            du = sum_parts(parts).astype(np.float64).reshape(3, A_IN, -1)
            gw = np.matmul(G.T, du).reshape(self.w.shape).astype(gy.dtype)
        gb = bias_grad(gy) if need_b else None
        return gx, gw, gb

    def _grad_transform(self, gyc, s):
        """dZg = A dZ_segment for every 4-wide segment, rows (n, i, tj) laid like V's (rows
        i >= OH zero): (6, k*Hp*tw, C_out)."""
        k, oh, ow, c_out = gyc.shape
        hp, tw = self.hp, self.tw
        full = _take(s["gfull"], (k, hp, M_OUT * tw, c_out))  # dZ on the padded rows, 0 after
        full[:, oh:] = 0
        if ow < M_OUT * tw:
            full[:, :oh, ow:] = 0
        np.copyto(pixels(full)[:, :oh, :ow], pixels(gyc))
        e = _take(s["y"], (M_OUT, k, hp, tw, c_out))  # e[s, n, i, tj] = dZ[n, i, 4tj + s]
        np.copyto(pixels(e), pixels(full).reshape(k, hp, tw, M_OUT).transpose(3, 0, 1, 2))
        zg = _take(s["m"], (A_IN, k * hp * tw, c_out))
        np.matmul(self.a_, e.reshape(M_OUT, -1), out=zg.reshape(A_IN, -1))  # A along s
        return zg

    def _input_adjoint(self, dv, gxc, s):
        """dA_prev of the chunk into gxc (k, H, W, C_in): dd = B dV per segment, each added
        back at columns 4tj.. of its padded row (segments overlap by 2)."""
        k, h, wd, c = gxc.shape
        (pt, _), (pl, _) = self.geom.pads
        hp, tw = self.hp, self.tw
        dd = _take(s["d"], (A_IN, k, hp, tw, c))
        np.matmul(self.b_, dv.reshape(A_IN, -1), out=dd.reshape(A_IN, -1))  # B along b
        st = _take(s["st"], (k, hp, tw, A_IN, c))  # in image order: runs of 4 pixels below
        np.copyto(pixels(st), pixels(dd).transpose(1, 2, 3, 0))
        gp = _take(s["gp"], (k, hp, tw + 1, M_OUT, c))  # padded dA, 4 extra columns
        gp[:, :, :tw] = st[:, :, :, :M_OUT]
        gp[:, :, tw] = 0
        gp[:, :, 1:, :2] += st[:, :, :, M_OUT:]  # columns 4, 5 of segment tj: tj + 1's 0, 1
        gp = gp.reshape(k, hp, M_OUT * (tw + 1), c)
        np.copyto(pixels(gxc), pixels(gp)[:, pt : pt + h, pl : pl + wd])

    # ------------------------------------------------------------------ buffers
    def batch_chunks(self, n: int) -> list:
        """Slices of the batch whose segment array is about CHUNK_BYTES / 4 (>= one image)."""
        c = max(self.geom.x_shape[3], self.geom.w_shape[3])
        return chunks(n, 4 * A_IN * self.hp * self.tw * c * self.dtype.itemsize, grow=True)

    def _scratch(self, k: int) -> dict:
        """One share's buffers for chunks of up to k images (flat, taken as needed)."""
        c_in, c_out = self.geom.x_shape[3], self.geom.w_shape[3]
        hp, tw, dt = self.hp, self.tw, self.dtype
        segs = A_IN * k * hp * tw * max(c_in, c_out)
        return {
            "xp": np.zeros((k, hp, M_OUT * tw + 2, c_in), dt),
            "d": np.empty(segs, dt), "v": np.empty(segs, dt), "m": np.empty(segs, dt),
            "tmp": np.empty(segs, dt), "y": np.empty(segs, dt), "st": np.empty(segs, dt),
            "zfull": np.empty(k * hp * M_OUT * tw * c_out, dt),
            "gfull": np.empty(k * hp * M_OUT * tw * c_out, dt),
            "gp": np.empty(k * hp * M_OUT * (tw + 1) * c_in, dt),
        }
