"""cnnlab: a convolutional-network framework you can read, on NumPy.

>>> import cnnlab as cl
>>> from cnnlab import functional as F
>>> x = cl.tensor([[1.0, -2.0]], requires_grad=True)
>>> F.relu(x).sum().backward()
>>> x.grad
array([[1., 0.]], dtype=float32)
"""

from cnnlab import runtime
from cnnlab.gradcheck import GradcheckError, gradcheck
from cnnlab.ops.parallel import get_num_threads, set_num_threads
from cnnlab.ops.shape import concat, pad, stack
from cnnlab.tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor

__version__ = "0.1.0"


def save(model, path):
    """Save a model to one ``.npz`` file (weights, buffers, and a zoo model's description; no
    pickle). See :func:`cnnlab.train.saving.save`."""
    from cnnlab.train.saving import save as _save

    return _save(model, path)


def load(path, model=None):
    """Load a model saved by :func:`save` or ``cnnlab train`` (its checkpoints), in eval mode.
    See :func:`cnnlab.train.saving.load`."""
    from cnnlab.train.saving import load as _load

    return _load(path, model)


__all__ = [
    "save",
    "load",
    "Tensor",
    "Function",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "gradcheck",
    "GradcheckError",
    "concat",
    "stack",
    "pad",
    "get_num_threads",
    "set_num_threads",
    "runtime",
]
