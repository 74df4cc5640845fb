"""Winograd minimal filtering F(4x4, 3x3): 3x3 filters, stride 1, no dilation, one group.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). The output is
cut into 4x4 tiles; tile (ti, tj) reads the 6x6 input tile d at rows 4ti.., columns 4tj.. of
the padded input (tiles overlap by 2). Per tile and channel pair

    Z_tile = A^T [ U (.) V ] A,   U = G g G^T (6x6 per filter tap set),  V = B^T d B

and the sum over input channels of U (.) V is, for each of the 36 positions (a, b), one
matrix product M[a, b] = V[a, b] @ U[a, b], (P tiles, C_in) @ (C_in, C_out). That is 36
multiplications per 16 outputs instead of 9 * 16: 4x fewer. The gradients are the adjoints:

    dZg = A dZ_tile A^T                      (6x6 per tile: the output transform's adjoint)
    dU[a, b] = V[a, b]^T dZg[a, b]           dW = G^T dU G
    dV[a, b] = dZg[a, b] U[a, b]^T           dA_prev = B dV B^T added back over the tiles

with B^T, G, A^T the F(4x4, 3x3) matrices (interpolation points 0, +-1, +-2, infinity). Every
transform is a product by a 6x6 (or 4x6) matrix along one axis of a contiguous array whose
tile-position axes come first, so it runs as one BLAS call over the whole chunk; the layout
copies between images and tiles move whole pixels (kernels.base.pixels).

Accuracy: the filter transform (1/6, 1/12, 1/24) and dW = G^T dU G are computed in float64; the
input and output transforms have small integer entries. In float32 the largest errors of Z
and of the gradients against the exact result measured 2-6e-6 of the largest exact value on
ResNet-20's layers (the window matrix: ~5e-7), the float32 rounding grown by the transforms;
in float64 about 1e-14. tests/kernels bounds them by 1e-4 (float32) and 1e-10 (float64).
A transform mixes every value of a tile, so an inf or NaN in A_prev (or dZ) would spread
over its tile: such inputs take the window matrix.
Odd sizes: the tiles cover ceil(OH/4) x ceil(OW/4), the padded buffer is zero beyond the input
and the extra outputs are dropped. The batch is walked in chunks (a few images, so the tiles
stay in cache), dealt to the runtime's threads.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from cnnlab.kernels.base import Kernel, bias_grad, chunks, most, pixels
from cnnlab.kernels.window import Window
from cnnlab.ops.parallel import map_chunks, sum_parts

__all__ = ["Winograd", "filter_transform", "filter_grad"]

BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=np.float64)  # B^T (6, 6)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)  # G (6, 3)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=np.float64)  # A^T (4, 6)
M_OUT, A_IN = 4, 6  # output tile m, input tile m + 3 - 1
# The bias: column 1 of A^T is (1, 1, 1, 1), so b added to M at position (a, b) = (1, 1) comes
# out as A^T (b e_1 e_1^T) A = b at all 16 outputs of the tile: 1/36 of a pass over Z, not one.
BIAS_AT = 1 * A_IN + 1
# Keep V (2.25x the layer's input) from forward for dW instead of transforming the input again
# in backward? Kept, ResNet-20's training step ran ~15% faster but its peak memory grew by
# ~80 MB, past PyTorch's (docs/PERFORMANCE.md): off, so that training stays within PyTorch's
# memory. Set True to trade the memory for the speed.
KEEP_V = False


def filter_transform(w: np.ndarray) -> np.ndarray:
    """U[(a, b)] = (G g G^T)[a, b] for every (C_in, C_out) pair, in float64: (36, C_in, C_out)
    in w's dtype."""
    t = G @ w.astype(np.float64).reshape(3, -1)  # G along u: (6a, (v, C_in, C_out))
    u = np.matmul(G, t.reshape(A_IN, 3, -1))  # G along v, per a: (6a, 6b, C_in*C_out)
    return u.reshape(A_IN * A_IN, *w.shape[2:]).astype(w.dtype)


def filter_grad(du: np.ndarray, dtype) -> np.ndarray:
    """dW = G^T dU G from dU (36, C_in, C_out), in float64: (3, 3, C_in, C_out) in ``dtype``."""
    t = G.T @ du.astype(np.float64).reshape(A_IN, -1)  # G^T along a: (3u, (b, C_in, C_out))
    dw = np.matmul(G.T, t.reshape(3, A_IN, -1))  # G^T along b, per u: (3u, 3v, C_in*C_out)
    return dw.reshape(3, 3, *du.shape[1:]).astype(dtype)


def _take(buf: np.ndarray, shape: tuple) -> np.ndarray:
    """The first prod(shape) values of a flat scratch buffer as a contiguous array."""
    # math.prod: np.prod on a tuple is microseconds of GIL-held glue (docs/PERFORMANCE.md)
    return buf[: math.prod(shape)].reshape(shape)


class _Winograd3x3(Kernel):
    """What both Winograd kernels share: 3x3, stride 1, no dilation, one group; B and A in the
    layer's dtype; finite inputs only (a transform spreads an inf or NaN over its tile)."""

    @classmethod
    def eligible(cls, geom):
        return (geom.w_shape[:2] == (3, 3) and geom.stride == (1, 1)
                and geom.dilation == (1, 1) and geom.groups == 1)

    def __init__(self, geom):
        super().__init__(geom)
        self.dtype = np.dtype(geom.dtype)
        self.bt, self.b_ = BT.astype(self.dtype), BT.T.astype(self.dtype)  # B^T, B
        self.at, self.a_ = AT.astype(self.dtype), AT.T.astype(self.dtype)  # A^T, A

    def accepts(self, x):
        return bool(np.isfinite(x).all())

    def backward(self, gy, need_x, need_w, need_b):
        """The gradients by the transforms (``_transform_backward``), or by the window matrix
        when dZ holds an inf or NaN (a transform would spread it over its tile)."""
        if not self.accepts(gy):
            window = Window(self.geom)
            window.w, window.x = self.w, self.x
            return window.backward(gy, need_x, need_w, need_b)
        return self._transform_backward(_pixel_rows(gy), need_x, need_w, need_b)

    def prepare(self, w, b=None, relu=False):
        """``run(x) -> Z`` (max(Z, 0) with ``relu``) for inference on fixed weights, inputs of
        the geometry's shape: the transformed filters and the chunks' buffers are made once, so
        a call is forward's chunk walk alone. An input holding an inf or NaN takes the window
        matrix, as :func:`cnnlab.kernels.select` would send it. The buffers are reused (a set
        per share running at once); the result is a new array each call. ``run.kernel`` is
        this kernel's name."""
        geom, u = self.geom, self.transformed_filters(w)
        n = geom.x_shape[0]
        spare, lock = [], threading.Lock()  # (images, buffers) not in use: one set per share
        zeros = np.zeros(math.prod(geom.out_shape[1:]), w.dtype)  # ReLU: max(Z, 0) by rows

        def buffers(k):
            with lock:
                for i, (size, _) in enumerate(spare):
                    if size >= k:
                        return spare.pop(i)
            return k, self._scratch(k)

        def run(x):
            if not self.accepts(x):  # as select() would: the window matrix
                z = Window(geom).forward(x, w, b, False)
            else:
                z = transformed(_pixel_rows(x))
            if relu:  # by image rows against a row of zeros (ops.activation.relu_array)
                rows = z.reshape(n, -1)
                np.maximum(rows, zeros, out=rows)
            return z

        def transformed(x):
            z = np.empty(geom.out_shape, dtype=w.dtype)  # (N, OH, OW, C_out)

            def share(parts):
                taken = buffers(most(parts))
                try:
                    for chunk in parts:
                        self._forward_chunk(x[chunk], u, b, z[chunk], taken[1])
                finally:
                    with lock:
                        spare.append(taken)

            if n == 1:  # one image: one chunk, no threads to deal to
                share(_ONE_IMAGE)
            else:
                map_chunks(share, self.batch_chunks(n))
            return z

        run.kernel = self.name
        return run


class Winograd(_Winograd3x3):
    """F(4x4, 3x3): Z = A^T [U (.) V] A per 4x4 output tile (module docstring)."""

    name = "winograd"
    keeps = ("A_prev (for dW: V transformed again; with KEEP_V, V = B^T d B of every tile, "
             "2.25x A_prev, instead), W and U = G W G^T")

    def __init__(self, geom):
        super().__init__(geom)
        oh, ow = geom.out_hw
        self.th, self.tw = -(-oh // M_OUT), -(-ow // M_OUT)  # tiles down, across

    # ------------------------------------------------------------------ forward
    def forward(self, x, w, b, need_w):
        x = _pixel_rows(x)
        self.w, self.x = w, x if need_w else None
        self.u = u = self.transformed_filters(w)  # (36, C_in, C_out)
        self.kept = {} if need_w and KEEP_V else None  # V of each chunk, for dW
        z = np.empty(self.geom.out_shape, dtype=x.dtype)  # (N, OH, OW, C_out)

        def share(parts):  # each chunk writes its own images of z
            s = self._scratch(most(parts))
            for chunk in parts:
                keep = None if self.kept is None else self._v_array(chunk)
                v = self._forward_chunk(x[chunk], u, b, z[chunk], s, keep)
                if keep is not None:
                    self.kept[chunk.start, chunk.stop] = v

        map_chunks(share, self.batch_chunks(x.shape[0]))
        return z

    def _forward_chunk(self, xc, u, b, zc, s, keep=None):
        """Z of the chunk's images into zc: V = B^T d B, M = V U (+ b at position (1, 1)),
        Z = A^T M A. Returns V."""
        v = self._input_transform(xc, s, out=keep)  # (36, P, C_in)
        m = _take(s["m"], (A_IN * A_IN, v.shape[1], u.shape[2]))
        np.matmul(v, u, out=m)  # (36, P, C_in) @ (36, C_in, C_out)
        if b is not None:  # A^T e_1 = (1, 1, 1, 1): b at (1, 1) is b at every output
            m[BIAS_AT] += b
        self._output_transform(m, zc, s)
        return v

    def transformed_filters(self, w):
        """U = G W G^T (36, C_in, C_out): what forward multiplies the tiles by."""
        return filter_transform(w)

    def _v_array(self, chunk) -> np.ndarray:
        """A new array for the V of ``chunk``'s images, to keep for dW: (6, 6, P*C_in)."""
        p = (chunk.stop - chunk.start) * self.th * self.tw
        return np.empty((A_IN, A_IN, p * self.geom.x_shape[3]), self.dtype)

    def _input_transform(self, xc, s, out=None):
        """V = B^T d B for every 6x6 tile d of the chunk's padded images: (36, P, C_in), rows
        P = (n, ti, tj), positions (a, b) as a*6 + b; into ``out`` (6, 6, P*C_in) if given."""
        x_in, tiles, d, d_rows, t1, t1_rows, v = _views(s, ("in", xc.shape[0]), self._in_views)
        np.copyto(x_in, pixels(xc))  # the interior of the zero-bordered buffer
        np.copyto(d, tiles)  # whole pixels: (6i, 6j, k, th, tw) of C_in values
        np.matmul(self.bt, d_rows, out=t1)  # B^T along i: (6a, (j, P, C))
        if out is None:
            np.matmul(self.bt, t1_rows, out=v)  # B^T along j, per a
            return v.reshape(A_IN * A_IN, -1, xc.shape[3])
        np.matmul(self.bt, t1_rows, out=out)
        return out.reshape(A_IN * A_IN, -1, xc.shape[3])

    def _in_views(self, s, key):
        """The input transform's views of the buffers, for chunks of k images (made once)."""
        k = key[1]
        _, h, wd, c = self.geom.x_shape
        (pt, _), (pl, _) = self.geom.pads
        th, tw, p = self.th, self.tw, k * self.th * self.tw
        xp = s["xp"][:k]  # (k, 4th + 2, 4tw + 2, C_in), zero outside the interior
        s0, s1, s2, s3 = xp.strides
        tiles = np.lib.stride_tricks.as_strided(  # tiles[i, j, n, ti, tj] = xp[n, 4ti+i, 4tj+j]
            xp, (A_IN, A_IN, k, th, tw, c), (s1, s2, s0, M_OUT * s1, M_OUT * s2, s3),
            writeable=False)
        d = _take(s["d"], (A_IN, A_IN, k, th, tw, c))  # (6, 6, k, th, tw, C_in)
        t1 = _take(s["t1"], (A_IN, A_IN * p * c))
        return (pixels(xp[:, pt : pt + h, pl : pl + wd]), pixels(tiles), pixels(d),
                d.reshape(A_IN, -1), t1, t1.reshape(A_IN, A_IN, -1),
                _take(s["v"], (A_IN, A_IN, p * c)))

    def _output_transform(self, m, zc, s):
        """Z tiles = A^T M A from M (36, P, C_out), written into zc (k, OH, OW, C_out)."""
        k, oh, ow, c_out = zc.shape
        y1, y1_rows, y, src, full = _views(s, ("out", k), self._out_views)
        np.matmul(self.at, m.reshape(A_IN, -1), out=y1)  # A^T along a
        np.matmul(self.at, y1_rows, out=y)  # A^T along b, per r
        if full is None:  # (k, th, r, tw, s): straight into z
            np.copyto(pixels(zc).reshape(k, self.th, M_OUT, self.tw, M_OUT), src)
        else:  # whole tiles, then the outputs that exist
            np.copyto(full[0], src)
            np.copyto(pixels(zc), full[1])

    def _out_views(self, s, key):
        """The output transform's views of the buffers, for chunks of k images (made once)."""
        k = key[1]
        oh, ow = self.geom.out_hw
        th, tw, c_out = self.th, self.tw, self.geom.w_shape[3]
        p = k * th * tw
        y1 = _take(s["y1"], (M_OUT, A_IN * p * c_out))
        y = _take(s["y"], (M_OUT, M_OUT, p * c_out))
        src = pixels(y.reshape(M_OUT, M_OUT, k, th, tw, c_out)).transpose(2, 3, 0, 4, 1)
        full = None
        if (oh, ow) != (M_OUT * th, M_OUT * tw):
            whole = pixels(_take(s["zfull"], (k, M_OUT * th, M_OUT * tw, c_out)))
            full = (whole.reshape(k, th, M_OUT, tw, M_OUT), whole[:, :oh, :ow])
        return y1, y1.reshape(M_OUT, A_IN, -1), y, src, full

    # ------------------------------------------------------------------ backward
    def _transform_backward(self, gy, need_x, need_w, need_b):
        """dA_prev, dW, db of a finite dZ with contiguous channels (module docstring)."""
        c_in, c_out = self.geom.x_shape[3], self.w.shape[3]
        gx = np.empty(self.geom.x_shape, dtype=gy.dtype) if need_x else None  # (N, H, W, C_in)
        ut = np.ascontiguousarray(self.u.transpose(0, 2, 1)) if need_x else None  # (36, Co, Ci)

        def share(parts):  # this share's part of dU; its chunks' images of gx
            s = self._scratch(most(parts))
            du = np.zeros((A_IN * A_IN, c_in, c_out), dtype=gy.dtype) if need_w else None
            for chunk in parts:
                zg = self._grad_transform(gy[chunk], s)  # (36, P, C_out)
                if need_w:
                    v = (self.kept or {}).get((chunk.start, chunk.stop))
                    if v is None:  # not kept, or other chunks: transformed again
                        v = self._input_transform(self.x[chunk], s)  # (36, P, C_in)
                    du += np.matmul(v.transpose(0, 2, 1), zg)  # (36, C_in, P) @ (36, P, C_out)
                if need_x:
                    dv = _take(s["m"], (A_IN * A_IN, zg.shape[1], c_in))
                    np.matmul(zg, ut, out=dv)  # (36, P, C_out) @ (36, C_out, C_in)
                    self._input_adjoint(dv, gx[chunk], s)
            return du

        parts = map_chunks(share, self.batch_chunks(gy.shape[0]))
        self.kept = None
        gw = filter_grad(sum_parts(parts), gy.dtype) if need_w else None
        gb = bias_grad(gy) if need_b else None
        return gx, gw, gb

    def _grad_transform(self, gyc, s):
        """dZg = A dZ_tile A^T for every 4x4 tile of the chunk's dZ: (36, P, C_out)."""
        k, oh, ow, c_out = gyc.shape
        th, tw, p = self.th, self.tw, k * self.th * self.tw
        if (oh, ow) == (M_OUT * th, M_OUT * tw):
            full = gyc
        else:  # dZ on whole tiles, zero beyond the outputs
            full = _take(s["zfull"], (k, M_OUT * th, M_OUT * tw, c_out))
            full[:, oh:] = 0
            full[:, :oh, ow:] = 0
            np.copyto(pixels(full)[:, :oh, :ow], pixels(gyc))
        e = _take(s["y"], (M_OUT, M_OUT, k, th, tw, c_out))  # e[r, s, n, ti, tj]
        src = pixels(full).reshape(k, th, M_OUT, tw, M_OUT).transpose(2, 4, 0, 1, 3)
        np.copyto(pixels(e), src)
        g1 = _take(s["y1"], (A_IN, M_OUT * p * c_out))
        np.matmul(self.a_, e.reshape(M_OUT, -1), out=g1)  # A along r: (6a, (s, P, C_out))
        zg = _take(s["zg"], (A_IN, A_IN, p * c_out))
        np.matmul(self.a_, g1.reshape(A_IN, M_OUT, -1), out=zg)  # A along s, per a
        return zg.reshape(A_IN * A_IN, p, c_out)

    def _input_adjoint(self, dv, gxc, s):
        """dA_prev of the chunk into gxc (k, H, W, C_in): dd = B dV B^T per tile, each tile
        added back at rows 4ti.., columns 4tj.. of the padded gradient (tiles overlap by 2)."""
        k, h, wd, c = gxc.shape
        (pt, _), (pl, _) = self.geom.pads
        th, tw, p = self.th, self.tw, dv.shape[1]
        d1 = _take(s["t1"], (A_IN, A_IN * p * c))
        np.matmul(self.b_, dv.reshape(A_IN, -1), out=d1)  # B along a
        dd = _take(s["v"], (A_IN, A_IN, p * c))
        np.matmul(self.b_, d1.reshape(A_IN, A_IN, -1), out=dd)  # B along b, per i
        # the tiles in image order, (k, th, i, tw, j, C_in): one copy of whole pixels, after
        # which the overlapping adds below read runs of 4 pixels, not of one
        st = _take(s["d"], (k, th, A_IN, tw, A_IN, c))
        src = pixels(dd.reshape(A_IN, A_IN, k, th, tw, c)).transpose(2, 3, 0, 4, 1)
        np.copyto(pixels(st), src)
        dd = st
        gp = _take(s["gp"], (k, th + 1, M_OUT, tw + 1, M_OUT, c))  # padded dA, 4 extra rows
        gp[:, :th, :, :tw] = dd[:, :, :M_OUT, :, :M_OUT]
        gp[:, th] = 0
        gp[:, :th, :, tw] = 0
        gp[:, 1:, :2, :tw] += dd[:, :, M_OUT:, :, :M_OUT]  # rows 4, 5 of tile ti: ti + 1's 0, 1
        gp[:, :th, :, 1:, :2] += dd[:, :, :M_OUT, :, M_OUT:]  # columns 4, 5 likewise
        gp[:, 1:, :2, 1:, :2] += dd[:, :, M_OUT:, :, M_OUT:]
        gp = gp.reshape(k, M_OUT * (th + 1), M_OUT * (tw + 1), c)
        np.copyto(pixels(gxc), pixels(gp)[:, pt : pt + h, pl : pl + wd])

    # ------------------------------------------------------------------ buffers
    def batch_chunks(self, n: int) -> list:
        """Slices of the batch whose tile array (36 values per tile and channel) is about
        CHUNK_BYTES / 4 (>= one image), ~0.5 MB: measured fastest (docs/PERFORMANCE.md)."""
        c = max(self.geom.x_shape[3], self.geom.w_shape[3])
        return chunks(n, 4 * A_IN * A_IN * self.th * self.tw * c * self.dtype.itemsize, grow=True)

    def _scratch(self, k: int) -> dict:
        """One share's buffers for chunks of up to k images (flat, taken as needed)."""
        c_in, c_out = self.geom.x_shape[3], self.geom.w_shape[3]
        th, tw, c = self.th, self.tw, max(c_in, c_out)
        tiles = A_IN * A_IN * k * th * tw * c
        dt = self.dtype
        return {
            "xp": np.zeros((k, M_OUT * th + 2, M_OUT * tw + 2, c_in), dt),
            "d": np.empty(tiles, dt), "t1": np.empty(tiles, dt), "v": np.empty(tiles, dt),
            "m": np.empty(tiles, dt), "y1": np.empty(tiles, dt), "y": np.empty(tiles, dt),
            "zg": np.empty(tiles, dt),
            "zfull": np.empty(k * M_OUT * th * M_OUT * tw * c_out, dt),
            "gp": np.empty(k * M_OUT * (th + 1) * M_OUT * (tw + 1) * c_in, dt),
        }


_ONE_IMAGE = [slice(0, 1)]


def _views(s: dict, key: tuple, make):
    """``s[key]``, made by ``make(s, key)`` on first use: a share's views of its buffers are
    built once, not per chunk (each is Python glue holding the GIL: docs/PERFORMANCE.md)."""
    got = s.get(key)
    if got is None:
        got = s[key] = make(s, key)
    return got


def _pixel_rows(a: np.ndarray) -> np.ndarray:
    """``a`` with contiguous channels (a copy only when they are strided): the layout copies
    move whole pixels."""
    return a if a.strides[-1] == a.itemsize else np.ascontiguousarray(a)
