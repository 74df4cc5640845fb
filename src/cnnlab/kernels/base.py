"""What every convolution kernel shares: the layer's geometry, the interface, batch chunks.

Legend: N batch, H/W input height/width, C_in input channels, C_out output channels,
KH/KW kernel, OH/OW output, G groups, Cg = C_in / G.

A kernel is one algorithm for ``Z = conv(A_prev, W) + b`` and its three gradients. It is made
for one call's :class:`Geometry`, runs ``forward`` once, keeps what its ``keeps`` says, and then
``backward`` may run once. Every kernel computes the same numbers as the window-matrix formulas
of ops/conv.py, up to the order of floating-point sums (and, for Winograd, the rounding of its
transforms: see kernels/winograd.py).
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass

import numpy as np

from cnnlab.ops._util import repeat_row
from cnnlab.ops.geometry import output_size
from cnnlab.ops.parallel import batch_chunks, share_count

__all__ = ["CHUNK_BYTES", "Geometry", "Kernel", "add_bias", "bias_grad", "chunks"]

# The fast algorithms walk the batch in chunks whose per-chunk buffer (a window matrix, a tile
# array) is about this many bytes: small enough to stay in the processor's cache between the
# copy that builds it and the product that reads it (docs/PERFORMANCE.md), large enough for
# BLAS to run at speed. kernels.use(chunk_images=k) overrides it (tests walk odd chunks).
CHUNK_BYTES = 1 << 21

# kernels.use(...) settings of the calling context: {"names": tuple | None, "chunk_images": int}
SETTINGS = contextvars.ContextVar("cnnlab_kernels", default=None)


def settings() -> dict:
    """The calling context's kernels.use settings ({} outside any use())."""
    return SETTINGS.get() or {}


@dataclass(frozen=True)
class Geometry:
    """A convolution's shapes and options: everything a kernel's choice depends on.

    ``pads`` is ((top, bottom), (left, right)); ``stride`` and ``dilation`` are (h, w) pairs.
    """

    x_shape: tuple
    w_shape: tuple
    stride: tuple
    pads: tuple
    dilation: tuple
    groups: int
    dtype: np.dtype

    @property
    def out_hw(self) -> tuple:
        """(OH, OW) = floor((H + p_top + p_bottom - d(KH - 1) - 1) / s) + 1, likewise OW."""
        (_, h, wd, _), (kh, kw) = self.x_shape, self.w_shape[:2]
        return (output_size(h, kh, self.stride[0], self.pads[0], self.dilation[0]),
                output_size(wd, kw, self.stride[1], self.pads[1], self.dilation[1]))

    @property
    def out_shape(self) -> tuple:
        """(N, OH, OW, C_out)."""
        return (self.x_shape[0], *self.out_hw, self.w_shape[3])

    @property
    def padded(self) -> bool:
        return any(p for pair_ in self.pads for p in pair_)


class Kernel:
    """The interface: one algorithm, made per call for its geometry.

    Subclasses set ``name`` and ``keeps`` (what forward keeps for backward, in words) and
    implement ``eligible``, ``forward`` and ``backward``. ``accepts(x)`` says whether the input's
    values suit the algorithm (a transform that mixes values would spread an inf or NaN).
    """

    name = "kernel"
    keeps = "nothing"

    def __init__(self, geom: Geometry):
        self.geom = geom

    @classmethod
    def eligible(cls, geom: Geometry) -> bool:
        """Whether the algorithm computes this geometry at all."""
        raise NotImplementedError

    def accepts(self, x: np.ndarray) -> bool:
        """Whether the algorithm suits these input values (default: any)."""
        return True

    def forward(self, x: np.ndarray, w: np.ndarray, b, need_w: bool) -> np.ndarray:
        """Z (N, OH, OW, C_out); ``need_w``: backward will want dW (keep what it needs)."""
        raise NotImplementedError

    def backward(self, gy: np.ndarray, need_x: bool, need_w: bool, need_b: bool):
        """(dA_prev, dW, db), None for those not needed."""
        raise NotImplementedError


def chunks(n: int, bytes_per_image: int, grow: bool = False) -> list:
    """Slices of a batch of n images: about CHUNK_BYTES of a per-image buffer each (>= one
    image), or ``kernels.use(chunk_images=k)``'s k images each. ``grow``: CHUNK_BYTES times
    the runtime's share count (parallel.share_count()), for kernels that make many NumPy
    calls per chunk."""
    k = settings().get("chunk_images")
    if k:
        return [slice(i, min(i + k, n)) for i in range(0, n, k)]
    # Each NumPy call releases the GIL and takes it back; with 2 threads the other thread
    # often holds it then and the caller sleeps until woken (docs/PERFORMANCE.md, 2026-12-04).
    scale = share_count() if grow else 1
    return batch_chunks(n, bytes_per_image, CHUNK_BYTES * scale)


def most(parts: list) -> int:
    """Images in the largest chunk: the buffers a walk over ``parts`` reuses are this big."""
    return max((c.stop - c.start for c in parts), default=0)


def add_bias(z: np.ndarray, b) -> None:
    """z += b in place, b repeated along an image row: the add then runs over whole rows of
    OW*C_out values (broadcasting b over (M, C_out) runs over rows of only C_out values)."""
    if b is not None:
        n, oh, ow, c_out = z.shape
        z_rows = z.reshape(n * oh, ow * c_out)  # (N*OH, OW*C_out), a view
        z_rows += repeat_row(b, ow)


def bias_grad(gy: np.ndarray) -> np.ndarray:
    """db = sum of dZ over every axis but the channels: over image rows first (N*OH,
    OW*C_out), whose long rows NumPy adds fast, then over the OW groups. (C_out,)"""
    ow, c_out = gy.shape[2:]
    return gy.reshape(-1, ow * c_out).sum(axis=0).reshape(ow, c_out).sum(axis=0)


def pixels(a: np.ndarray) -> np.ndarray:
    """``a`` (..., C) with each pixel's C contiguous values viewed as one item (..., ): a copy
    between two such views moves whole pixels, ~1.6x faster than moving C floats one by one
    (the copies of the Winograd and window layouts; docs/PERFORMANCE.md)."""
    return a.view(_void(a.shape[-1] * a.itemsize))[..., 0]


@functools.cache
def _void(nbytes: int) -> np.dtype:
    """The void dtype of ``nbytes``, made once: made per call it was GIL-held glue (~1-2 us,
    ~150 calls a Winograd layer; docs/PERFORMANCE.md)."""
    return np.dtype((np.void, nbytes))
