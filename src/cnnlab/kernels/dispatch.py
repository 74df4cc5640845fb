"""The one place a convolution's algorithm is chosen, and the setting that forces it.

The choice is a rule on the geometry, not a timing of the candidates on the first call of a
shape (cuDNN's benchmark mode): a rule gives the same kernel, hence the same bits, on every run
and every machine for a given thread count; it costs nothing on the first call; and on the
shared, noisy machines cnnlab is measured on, a first-call timing would pick by the neighbours'
load. The rule's thresholds come from the measurements in docs/PERFORMANCE.md:

1. 3x3, stride 1, no dilation, one group, float32, C_in and C_out >= 8 (float64 keeps the
   textbook's rounding): Winograd along rows F(4, 3) below 32 channels (its transforms are a
   third of the 2-D form's, which decides few-channel layers), the 2-D F(4x4, 3x3) from 32 on
   (4x fewer multiplications, which decides many-channel layers);
2. banded rows for few channels (C_in <= 8, C_out <= 16, stride 1, one group, KW >= 3);
3. the window matrix for everything else.

An input holding an inf or NaN takes the window matrix wherever the chosen kernel mixes values
(banded, Winograd), so that it reaches only the outputs whose windows hold it.

For inference on fixed weights (:func:`prepare`, the Predictor) the same rule, with the 2-D
Winograd form also for fewer than 32 channels when the batch fits one chunk (batch 1), and the
prepared window or banded kernel where the rule picks those.
"""

from __future__ import annotations

import contextlib

import numpy as np

from cnnlab.kernels.banded import Banded
from cnnlab.kernels.base import SETTINGS, Geometry, settings
from cnnlab.kernels.prepared import Prepared
from cnnlab.kernels.window import Window
from cnnlab.kernels.winograd import Winograd
from cnnlab.kernels.winograd_rows import WinogradRows
from cnnlab.ops.activation import relu_array

__all__ = ["KERNELS", "forced", "prepare", "select", "use"]

KERNELS = {k.name: k for k in (Window, Banded, Winograd, WinogradRows, Prepared)}
_PREPARED = ("prepared", "winograd", "winograd_rows")  # kernels with prepare()
WINOGRAD_MIN_CHANNELS, WINOGRAD_2D_MIN_CHANNELS = 8, 32


def _by_rule(geom: Geometry):
    """The default choice (module docstring)."""
    c_in, c_out = geom.w_shape[2], geom.w_shape[3]
    if (Winograd.eligible(geom) and np.dtype(geom.dtype) == np.float32
            and min(c_in, c_out) >= WINOGRAD_MIN_CHANNELS):
        return Winograd if min(c_in, c_out) >= WINOGRAD_2D_MIN_CHANNELS else WinogradRows
    if Banded.eligible(geom):
        return Banded
    return Window


def select(geom: Geometry, x: np.ndarray):
    """The kernel for this call: the rule's (or, under :func:`use`, the first forced kernel
    that is eligible; the window matrix where none is), made for ``geom``; the window matrix
    when the chosen one does not accept the input's values (inf or NaN)."""
    names = settings().get("names")
    if names is None:
        cls = _by_rule(geom)
    else:
        cls = next((KERNELS[n] for n in names if n != "prepared" and KERNELS[n].eligible(geom)),
                   Window)  # the prepared kernel has no backward: inference only (prepare)
    kernel = cls(geom)
    return kernel if kernel.accepts(x) else Window(geom)


def prepare(geom: Geometry, w: np.ndarray, b=None, relu: bool = False):
    """``run(x) -> Z`` (max(Z, 0) with ``relu``) for inference on fixed weights, inputs of
    ``geom.x_shape``, set up once (the transformed filters or kernel matrix, the buffers and
    their views). By the rule: where it picks a Winograd kernel, that kernel prepared (the 2-D
    form when the batch fits one chunk: at batch 1 it measured faster than the rows form on
    ResNet-20's 16-channel layers, docs/PERFORMANCE.md); else the prepared window or banded
    kernel where the batch fits one chunk. Under :func:`use`: the first forced kernel that can
    be prepared ('prepared', 'winograd', 'winograd_rows') and is eligible. Otherwise each
    call's selected kernel. An input with an inf or NaN takes the window matrix wherever the
    kernel would mix values (see :func:`select`). ``run.kernel`` names the prepared kernel
    (None: chosen per call)."""
    names = settings().get("names")
    if names is None:
        cls = _by_rule(geom)
        if cls is WinogradRows and len(Winograd(geom).batch_chunks(geom.x_shape[0])) == 1:
            cls = Winograd  # a batch in one chunk: the 2-D form measured faster (batch 1)
        elif cls not in (Winograd, WinogradRows):
            cls = Prepared if Prepared.eligible(geom) else None
    else:
        cls = next((KERNELS[n] for n in names
                    if n in _PREPARED and KERNELS[n].eligible(geom)), None)
    if cls is not None:
        return cls(geom).prepare(w, b, relu)

    def run_forward(x):
        z = select(geom, x).forward(x, w, b, False)
        return relu_array(z, out=z) if relu else z

    run_forward.kernel = None  # chosen per call
    return run_forward


@contextlib.contextmanager
def use(*names: str, chunk_images: int | None = None):
    """Force the kernels of convolutions called in this context (this thread), for tests and
    comparisons: ``with cnnlab.kernels.use("winograd"): ...``.

    Args:
        names: kernels in order of preference ('window', 'banded', 'winograd',
            'winograd_rows', 'prepared');
            each call takes the first one eligible for its geometry, else the window matrix.
            None given: the default rule.
        chunk_images: walk every batch in chunks of this many images (None: by bytes).
    """
    for name in names:
        if name not in KERNELS:
            raise ValueError(f"kernels.use: unknown kernel {name!r}; expected one of "
                             f"{', '.join(sorted(KERNELS))}")
    if chunk_images is not None and (isinstance(chunk_images, bool)
                                     or not isinstance(chunk_images, int) or chunk_images < 1):
        raise ValueError(f"kernels.use: chunk_images must be an int >= 1 or None; "
                         f"received {chunk_images!r}")
    chosen = dict(settings())
    if names:
        chosen["names"] = tuple(names)
    if chunk_images is not None:
        chosen["chunk_images"] = chunk_images
    token = SETTINGS.set(chosen)
    try:
        yield
    finally:
        SETTINGS.reset(token)


def forced():
    """The kernel names forced by :func:`use` in this context, or None (the rule)."""
    return settings().get("names")
