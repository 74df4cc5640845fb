"""The window matrix (im2col): every geometry, and the fallback of every other kernel.

Legend: N batch, H/W input, C_in/C_out channels, KH/KW kernel, OH/OW output, G groups,
Cg = C_in / G, Og = C_out / G, M = N*OH*OW rows, K = KH*KW*Cg taps.

    Z = cols @ W            cols (M, K): row (n, i, j) holds window (i, j) of image n
    dW = cols^T @ dZ        cols built again from A_prev, chunk by chunk (nothing else kept)
    dA_prev = col2im(dZ W^T)

the formulas of ops/conv.py, walked over the batch in chunks whose cols stays in cache, the
chunks dealt to the runtime's threads (ops/parallel.py). dA_prev is computed by whichever of
three equal formulas is fastest here (benchmarks/ops.py): stride 1 and C_out >= 2 C_in: one
product G = W dZ^T, then KH*KW shifted slab adds on a flat layout (the fold); other stride 1:
the forward convolution of dZ padded by d(K-1) - p with the kernel flipped in space and
transposed in channels; stride > 1: one product P = dZ W^T, then one strided add per tap.
"""

from __future__ import annotations

import numpy as np

from cnnlab.kernels.base import Geometry, Kernel, add_bias, bias_grad, chunks, most
from cnnlab.ops.geometry import windows
from cnnlab.ops.parallel import map_chunks, sum_parts

__all__ = ["Window", "padded_windows"]


class Window(Kernel):
    """The window matrix: Z = cols W, dW = cols^T dZ, dA_prev = col2im(dZ W^T)."""

    name = "window"
    keeps = "A_prev (for dW; the graph holds it anyway) and W"

    @classmethod
    def eligible(cls, geom: Geometry) -> bool:
        return True

    def forward(self, x, w, b, need_w):
        kh, kw, cg, c_out = w.shape
        g = self.geom.groups
        self.w, self.x = w, x if need_w else None
        z = np.empty(self.geom.out_shape, dtype=x.dtype)  # (N, OH, OW, C_out)
        if g == 1:
            w2 = w.reshape(kh * kw * cg, c_out)  # (K, C_out)
        else:
            wg = w.reshape(kh * kw * cg, g, c_out // g).transpose(1, 0, 2)  # (G, K, Og)

        def share(parts):  # each chunk writes its own images of z
            for chunk, cols in self.cols_by_chunk(x, parts):  # (Mc, K), groups: (G, Mc, K)
                zc = z[chunk].reshape(-1, c_out)  # (Mc, C_out), a view into z
                if g == 1:
                    np.matmul(cols, w2, out=zc)  # (Mc, K) @ (K, C_out)
                else:
                    zg = np.matmul(cols, wg)  # (G, Mc, Og)
                    zc[...] = zg.transpose(1, 0, 2).reshape(-1, c_out)  # group g's filters

        map_chunks(share, self.batch_chunks(x.shape[0]))
        add_bias(z, b)
        return z

    def backward(self, gy, need_x, need_w, need_b):
        gb = bias_grad(gy) if need_b else None
        gw = self.weight_grad(gy) if need_w else None
        gx = self.input_grad(gy) if need_x else None
        return gx, gw, gb

    def weight_grad(self, gy):
        """dW = cols^T dZ, summed chunk by chunk over windows built again from A_prev."""
        kh, kw, cg, c_out = self.w.shape
        g = self.geom.groups
        og = c_out // g

        def share(parts):  # this share's part of dW
            gw = np.zeros((g, kh * kw * cg, og), dtype=gy.dtype)  # (G, K, Og)
            for chunk, cols in self.cols_by_chunk(self.x, parts):  # (Mc, K) / (G, Mc, K)
                gy2 = gy[chunk].reshape(-1, c_out)  # (Mc, C_out)
                if g == 1:
                    gw[0] += cols.T @ gy2  # (K, Mc) @ (Mc, C_out)
                else:
                    gyg = gy2.reshape(-1, g, og).transpose(1, 0, 2)  # (G, Mc, Og)
                    gw += np.matmul(cols.transpose(0, 2, 1), gyg)  # (G, K, Mc) @ (G, Mc, Og)
            return gw

        gw = sum_parts(map_chunks(share, self.batch_chunks(gy.shape[0])))  # (G, K, Og)
        return gw.transpose(1, 0, 2).reshape(self.w.shape)  # (KH, KW, Cg, C_out)

    def input_grad(self, gy):
        """dA_prev (N, H, W, C_in): the fold, the flipped kernel or col2im (module docstring)."""
        geom = self.geom
        c_in, c_out = geom.x_shape[3], self.w.shape[3]
        if geom.stride == (1, 1) and (geom.groups > 1 or 2 * c_in > c_out):
            return self.input_grad_flip(gy)
        by_chunk = self.input_grad_fold if geom.stride == (1, 1) else self.input_grad_col2im
        gx = np.empty(geom.x_shape, dtype=gy.dtype)  # (N, H, W, C_in)

        def share(parts):  # each chunk writes its own images of gx
            for chunk in parts:
                gx[chunk] = by_chunk(gy[chunk])  # (k, H, W, C_in)

        map_chunks(share, self.batch_chunks(gy.shape[0]))
        return gx

    def input_grad_fold(self, gy):
        """dA_prev for stride 1: one product for every tap, then KH*KW shifted adds.

        Output position (i, j) sends W[u, v] @ dZ[n, i, j] to input pixel (i + u*dh, j + v*dw).
        Laid out on the padded row width Wp (zero columns after OW), pixel (i + u*dh, j + v*dw)
        sits at flat index (i*Wp + j) + u*dh*Wp + v*dw: the same shift for every position, so
        one product G = W @ dZ^T gives every tap's part, each added as one contiguous slab.
        """
        n, (_, h, wd, c_in) = gy.shape[0], self.geom.x_shape  # n: this chunk's images
        kh, kw, _, c_out = self.w.shape
        (dh, dw), ((pt, pb), (pl, pr)) = self.geom.dilation, self.geom.pads
        oh, ow = self.geom.out_hw
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

    def input_grad_col2im(self, gy):
        """dA_prev for any stride: P = dZ W^T for every window and tap (one product per
        group), then tap (u, v) of every window added on its strided grid: KH*KW adds."""
        n, (_, h, wd, c_in) = gy.shape[0], self.geom.x_shape  # n: this chunk's images
        kh, kw, cg, c_out = self.w.shape
        g, og = self.geom.groups, c_out // self.geom.groups
        (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = (self.geom.stride, self.geom.dilation,
                                                    self.geom.pads)
        oh, ow = self.geom.out_hw
        gyg = gy.reshape(n * oh * ow, g, og).transpose(1, 0, 2)  # (G, M, Og)
        wg = self.w.reshape(kh * kw * cg, g, og).transpose(1, 2, 0)  # (G, Og, K)
        prod = np.matmul(gyg, wg)  # (G, M, K): P for every window and tap
        prod = prod.reshape(g, n, oh, ow, kh, kw, cg).transpose(1, 2, 3, 4, 5, 0, 6)
        prod = prod.reshape(n, oh, ow, kh, kw, c_in)  # (N, OH, OW, KH, KW, C_in)
        gx_pad = np.zeros((n, h + pt + pb, wd + pl + pr, c_in), dtype=gy.dtype)  # (N, Hp, Wp, C)
        for u in range(kh):
            for v in range(kw):
                rows = slice(u * dh, u * dh + (oh - 1) * sh + 1, sh)  # OH rows
                cols = slice(v * dw, v * dw + (ow - 1) * sw + 1, sw)  # OW columns
                gx_pad[:, rows, cols, :] += prod[:, :, :, u, v, :]  # (N, OH, OW, C_in)
        return gx_pad[:, pt : pt + h, pl : pl + wd, :]  # (N, H, W, C_in)

    def input_grad_flip(self, gy):
        """dA_prev for stride 1 as a convolution of dZ with the flipped, transposed kernel:

            dA_prev[n, p, q, c] = sum_{u', v', o} dZ_pad[n, p + u'dh, q + v'dw, o] Wt[u', v', o, c]

        Wt[u', v', o, c] = W[KH-1-u', KW-1-v', c, o] (per group), dZ padded by d(K-1) - p on
        each side (a negative padding, p > d(K-1), crops dZ instead).
        """
        kh, kw, cg, c_out = self.w.shape
        geom = self.geom
        g, (dh, dw), ((pt, pb), (pl, pr)) = geom.groups, geom.dilation, geom.pads
        top, bottom = dh * (kh - 1) - pt, dh * (kh - 1) - pb
        left, right = dw * (kw - 1) - pl, dw * (kw - 1) - pr
        oh, ow = gy.shape[1:3]
        gy = gy[:, max(-top, 0) : oh - max(-bottom, 0), max(-left, 0) : ow - max(-right, 0)]
        wt = self.w[::-1, ::-1].reshape(kh, kw, cg, g, c_out // g)  # (KH, KW, Cg, G, Og)
        wt = wt.transpose(0, 1, 4, 3, 2).reshape(kh, kw, c_out // g, g * cg)  # (KH, KW, Og, C)
        pads = ((max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0)))
        flip = Geometry(gy.shape, wt.shape, (1, 1), pads, geom.dilation, g, geom.dtype)
        return Window(flip).forward(gy, wt, None, False)  # (N, H, W, C_in)

    def batch_chunks(self, n: int) -> list:
        """Slices of the batch whose window matrix is about CHUNK_BYTES (>= one image); the
        input gradient's buffers (fold, col2im) are about as big, so they serve backward too."""
        kh, kw, cg, _ = self.geom.w_shape
        oh, ow = self.geom.out_hw
        return chunks(n, oh * ow * kh * kw * cg * np.dtype(self.geom.dtype).itemsize)

    def cols_by_chunk(self, x, parts):
        """Yield (chunk, cols) per batch chunk: row (n, i, j) holds window (i, j) of image n.

        cols is (Mc, K), columns ordered (u, v, c) like W.reshape(K, C_out); with groups
        (G, Mc, K), group g's channels only. One buffer sized for the largest chunk serves every
        chunk, so a cols is valid only until the next one is asked for.
        """
        c_in = x.shape[3]
        kh, kw, cg, _ = self.geom.w_shape
        g, (oh, ow) = self.geom.groups, self.geom.out_hw
        store = np.empty(most(parts) * oh * ow * kh * kw * c_in, dtype=x.dtype)
        # (k, OH, OW, KH, KW, C_in) views of the chunk's windows
        for chunk, k, src in padded_windows(x, parts, self.geom.pads, (kh, kw), self.geom.stride,
                                            self.geom.dilation):
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


def padded_windows(x, parts, pads, kernel, stride, dilation):
    """Yield (chunk, k, windows) per batch chunk: the strided window view of the chunk's k
    padded images, (k, OH', OW', KH', KW', C_in) for the given kernel, stride, dilation.

    Without padding the views are of x itself; with it, one zero-bordered buffer holds each
    chunk in turn (only its interior is written), so a view is valid until the next one.
    """
    if not parts:  # an empty batch
        return
    n, h, wd, c_in = x.shape
    (pt, pb), (pl, pr) = pads
    if pt or pb or pl or pr:
        x_pad = np.zeros((most(parts), h + pt + pb, wd + pl + pr, c_in), dtype=x.dtype)
    else:
        x_pad = x  # no padding: the windows of the whole batch, sliced per chunk
    win = windows(x_pad, kernel, stride, dilation)  # (., OH', OW', KH', KW', C_in)
    for chunk in parts:
        k = chunk.stop - chunk.start  # images in this chunk
        if x_pad is x:
            yield chunk, k, win[chunk]  # a view
        else:
            x_pad[:k, pt : pt + h, pl : pl + wd] = x[chunk]  # the interior only
            yield chunk, k, win[:k]
