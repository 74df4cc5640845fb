"""Adam and AdamW: momentum plus RMSprop, with bias correction."""

from __future__ import annotations

import math

import numpy as np

from cnnlab.optim.optimizer import (
    Optimizer,
    check_beta,
    check_nonnegative,
    check_positive,
    decays,
    with_l2,
)

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (adaptive moment estimation) with bias correction, as in the course notes.

    For each parameter W with gradient g (after ``g = g + weight_decay * W`` for a regularized
    W: L2 regularization), at its t-th update (t = 1, 2, ...)::

        m = beta1 * m + (1 - beta1) * g             (momentum; m and v start at 0)
        v = beta2 * v + (1 - beta2) * g**2          (RMSprop)
        m_hat = m / (1 - beta1**t)                  (bias correction)
        v_hat = v / (1 - beta2**t)
        W = W - lr * m_hat / (sqrt(v_hat) + eps)

    This is ``torch.optim.Adam`` (amsgrad off), and the tests check that they agree. With Adam,
    L2 regularization through the gradient is scaled by the adaptive step; :class:`AdamW`
    decouples the decay from the gradient instead.

    Args:
        params: Parameters/Tensors, or parameter-group dicts (see :class:`Optimizer`).
        lr: the learning rate (>= 0).
        beta1: decay rate of the first moment, in [0, 1).
        beta2: decay rate of the second moment, in [0, 1).
        eps: added to sqrt(v_hat) so the division is safe (> 0).
        weight_decay: the L2 coefficient (>= 0), applied to regularized parameters only.

    State per parameter: ``m``, ``v`` and ``step`` (t, an integer).

    >>> import numpy as np, cnnlab as cl
    >>> w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.shape, round(float(w.data[0, 0]), 6)
    ((2, 3), 0.9)
    """

    state_spec = {"m": "array", "v": "array", "step": "count"}  # noqa: RUF012

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        defaults = {
            "lr": lr,
            "beta1": beta1,
            "beta2": beta2,
            "eps": eps,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    def _validate(self, group):
        name = type(self).__name__
        check_nonnegative(name, group, "lr")
        check_beta(name, group, "beta1")
        check_beta(name, group, "beta2")
        check_positive(name, group, "eps")
        check_nonnegative(name, group, "weight_decay")

    def _gradient(self, p, g, group):
        """The gradient the moments see: with L2, g + weight_decay * W (AdamW overrides)."""
        return with_l2(p, g, group["weight_decay"])

    def _update(self, p, g, group, state):
        lr, b1, b2 = group["lr"], group["beta1"], group["beta2"]
        g = self._gradient(p, g, group)
        m, v = state["m"], state["v"]
        state["step"] = t = state["step"] + 1
        np.multiply(m, b1, out=m)
        m += (1 - b1) * g  # m = beta1 * m + (1 - beta1) * g
        np.multiply(v, b2, out=v)
        v += (1 - b2) * g * g  # v = beta2 * v + (1 - beta2) * g^2
        denom = np.sqrt(v)
        denom /= math.sqrt(1 - b2**t)  # sqrt(v_hat)
        denom += group["eps"]
        p.data -= (lr / (1 - b1**t)) * m / denom  # lr * m_hat / (sqrt(v_hat) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter).

    Before the Adam update, a regularized parameter shrinks by its own fraction, independent of
    the gradient and of Adam's adaptive scaling::

        W = W - lr * weight_decay * W               (computed as W *= 1 - lr * weight_decay)
        then Adam's update with the plain gradient g (no L2 term added to g)

    This is ``torch.optim.AdamW``, except that here the decay skips parameters whose
    ``regularize`` is False (biases, batch-norm parameters); PyTorch decays everything it is
    given.

    Args:
        params, lr, beta1, beta2, eps: as :class:`Adam`.
        weight_decay: the decoupled decay rate (>= 0); default 0.01 as in PyTorch.

    >>> import numpy as np, cnnlab as cl
    >>> w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    >>> opt = AdamW([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.shape
    (2, 3)
    """

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, beta1, beta2, eps, weight_decay)

    def _gradient(self, p, g, group):
        """Shrink a regularized W in place (decoupled decay); the gradient stays as it is."""
        if group["weight_decay"] != 0 and decays(p):
            np.multiply(p.data, 1 - group["lr"] * group["weight_decay"], out=p.data)
        return g
