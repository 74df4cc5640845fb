"""L2 regularization as a loss term, and gradient clipping by global norm."""

from __future__ import annotations

import math

import numpy as np

from cnnlab.optim.optimizer import decays
from cnnlab.tensor import Tensor

__all__ = ["clip_grad_norm", "l2_penalty"]


def _as_list(op: str, params) -> list:
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(
                f"{op}: params must be Tensors or Parameters; received {type(p).__name__} "
                f"at position {i}"
            )
    return params


def l2_penalty(params, lam, m) -> Tensor:
    """The course's L2 regularization term, to add to the loss.

    ``penalty = lam / (2 m) * sum over regularized W of ||W||_F^2``, where ``||W||_F^2`` is the
    sum of the squared entries and m the number of training examples. Only parameters whose
    ``regularize`` is True count (weights; biases and batch-norm parameters are excluded by
    default; a plain Tensor counts when it has 2 or more axes), frozen ones included.

    It is built from tensor ops, so ``backward`` adds the gradient ``dW = lam / m * W`` to each
    regularized weight. Passing ``weight_decay = lam / m`` to :class:`SGD` gives the same
    gradient without the loss term; do not use both.

    Args:
        params: Parameters/Tensors (e.g. ``model.parameters()``).
        lam: lambda, the regularization strength (>= 0).
        m: the number of training examples (> 0).

    Returns:
        a Tensor with one element (shape ``()``), in the dtype of the first regularized
        parameter; a float32 zero when there is none.

    >>> import numpy as np, cnnlab as cl
    >>> w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    >>> l2_penalty([w], lam=0.5, m=3).shape
    ()
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.number)) or not lam >= 0:
        raise ValueError(f"l2_penalty: lam must be a number >= 0; received lam={lam!r}")
    if isinstance(m, bool) or not isinstance(m, (int, float, np.number)) or not m > 0:
        raise ValueError(
            f"l2_penalty: m (the number of training examples) must be > 0; received m={m!r}"
        )
    total = None
    for p in _as_list("l2_penalty", params):
        if not decays(p):
            continue
        squares = (p * p).sum()  # ||W||_F^2, shape ()
        total = squares if total is None else total + squares
    if total is None:
        return Tensor(np.zeros((), dtype=np.float32))
    return total * (float(lam) / (2 * float(m)))


def clip_grad_norm(params, max_norm) -> float:
    """Scale all gradients in place so that their global L2 norm is at most ``max_norm``.

    ``norm = sqrt(sum over parameters of sum(g**2))``; when ``norm > max_norm`` every gradient is
    multiplied by ``max_norm / (norm + 1e-6)``, which keeps the direction of the whole step
    (as ``torch.nn.utils.clip_grad_norm_``). Parameters whose grad is None are ignored.

    Args:
        params: Parameters/Tensors (e.g. ``model.parameters()``), or one Tensor.
        max_norm: the largest allowed global norm (> 0).

    Returns:
        the global norm before clipping, a Python float (``inf`` or ``nan`` when a gradient
        holds one; the gradients are then scaled as PyTorch does, so check the value).

    >>> import numpy as np, cnnlab as cl
    >>> w = cl.tensor(np.zeros((2, 3)), requires_grad=True)
    >>> w.grad = np.full((2, 3), 2.0)
    >>> clip_grad_norm([w], max_norm=1.0) > 1.0, w.grad.shape
    (True, (2, 3))
    """
    if (
        isinstance(max_norm, bool)
        or not isinstance(max_norm, (int, float, np.number))
        or not (max_norm > 0)
    ):
        raise ValueError(f"clip_grad_norm: max_norm must be > 0; received max_norm={max_norm!r}")
    grads = [p.grad for p in _as_list("clip_grad_norm", params) if p.grad is not None]
    if not grads:
        return 0.0
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = float(max_norm) / (norm + 1e-6)
    if coef < 1 or math.isnan(coef):
        for g in grads:
            np.multiply(g, coef, out=g)
    return norm
