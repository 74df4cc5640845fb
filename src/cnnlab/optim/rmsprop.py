"""RMSprop: divide the step by a running root mean square of the gradient."""

from __future__ import annotations

import numpy as np

from cnnlab.optim.optimizer import (
    Optimizer,
    check_beta,
    check_nonnegative,
    check_positive,
    with_l2,
)

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (root mean square propagation), as in the course notes.

    For each parameter W with gradient g (after ``g = g + weight_decay * W`` for a regularized
    W)::

        s = beta * s + (1 - beta) * g**2            (s starts at 0)
        W = W - lr * g / (sqrt(s) + eps)

    ``eps`` is added outside the square root, as in ``torch.optim.RMSprop``, which computes the
    same update with ``alpha = beta``. The default ``beta = 0.9`` is the course's; PyTorch's
    default is ``alpha = 0.99``. There is no bias correction (see :class:`Adam` for that).

    Args:
        params: Parameters/Tensors, or parameter-group dicts (see :class:`Optimizer`).
        lr: the learning rate (>= 0).
        beta: the decay rate of the mean square, in [0, 1).
        eps: added to the root mean square so the division is safe (> 0).
        weight_decay: the L2 coefficient (>= 0), applied to regularized parameters only.

    State per parameter: ``square_avg`` (s).

    >>> import numpy as np, cnnlab as cl
    >>> w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    >>> opt = RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.shape
    (2, 3)
    """

    state_spec = {"square_avg": "array"}  # noqa: RUF012

    def __init__(self, params, lr=0.001, beta=0.9, eps=1e-8, weight_decay=0.0):
        defaults = {"lr": lr, "beta": beta, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _validate(self, group):
        check_nonnegative("RMSprop", group, "lr")
        check_beta("RMSprop", group, "beta")
        check_positive("RMSprop", group, "eps")
        check_nonnegative("RMSprop", group, "weight_decay")

    def _update(self, p, g, group, state):
        beta, s = group["beta"], state["square_avg"]
        g = with_l2(p, g, group["weight_decay"])
        np.multiply(s, beta, out=s)
        s += (1 - beta) * g * g  # s = beta * s + (1 - beta) * g^2
        denom = np.sqrt(s)
        denom += group["eps"]
        p.data -= group["lr"] * g / denom
