"""Fast convolution algorithms behind one dispatch.

ops/conv.py states the convolution as the textbook writes it (the window matrix and its
adjoint) and asks :func:`select` which algorithm computes a call; each algorithm is a small
class with one interface (:class:`Kernel`: ``eligible(geometry)``, ``forward``, ``backward``,
and ``keeps``, what it keeps for backward):

============  ==============================================================================
window        the window matrix (im2col), every geometry; the fallback of all others
banded        banded rows, few channels (kernels/banded.py)
winograd      Winograd F(4x4, 3x3), 3x3 stride 1 (kernels/winograd.py)
winograd_rows Winograd along rows F(4, 3), 3x3 stride 1, few channels (kernels/winograd_rows.py)
prepared      inference on fixed weights, a batch in one chunk (the Predictor's batch 1)
============  ==============================================================================

:func:`prepare` sets a kernel up once for inference on fixed weights (the Predictor's
convolutions): the prepared kernel, or a Winograd kernel with its filters transformed once.

``with cnnlab.kernels.use("winograd"):`` forces a kernel (where eligible) for tests and
comparisons; ``use("window")`` is the textbook alone. The rule and why it is a rule:
kernels/dispatch.py.
"""

from cnnlab.kernels.banded import Banded
from cnnlab.kernels.base import Geometry, Kernel
from cnnlab.kernels.dispatch import KERNELS, forced, prepare, select, use
from cnnlab.kernels.prepared import Prepared
from cnnlab.kernels.window import Window
from cnnlab.kernels.winograd import Winograd
from cnnlab.kernels.winograd_rows import WinogradRows

__all__ = ["Banded", "Geometry", "KERNELS", "Kernel", "Prepared", "Window", "Winograd",
           "WinogradRows", "forced", "prepare", "select", "use"]
