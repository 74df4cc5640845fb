"""SGD: gradient descent with optional momentum (heavy ball or Nesterov) and L2 weight decay."""

from __future__ import annotations

import numpy as np

from cnnlab.optim.optimizer import Optimizer, check_beta, check_nonnegative, with_l2

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and L2 weight decay.

    For each parameter W with gradient g, first ``g = g + weight_decay * W`` when W is
    regularized (``regularize`` True: weights, not biases or batch-norm parameters), then::

        plain (momentum = 0):  W = W - lr * g
        momentum beta:         v = beta * v + g              (v starts at 0, so v_1 = g)
                               W = W - lr * v
        Nesterov:              v = beta * v + g
                               W = W - lr * (g + beta * v)

    This is ``torch.optim.SGD`` (with dampening 0), and the tests check that they agree.

    The course notes write momentum as an exponentially weighted average of the gradients,
    ``v = beta * v + (1 - beta) * g; W = W - alpha * v``. It is the same algorithm with the
    learning rate rescaled: from v = 0 the course's v is exactly ``(1 - beta)`` times the v above,
    so the notes' ``alpha`` corresponds to ``lr = alpha * (1 - beta)`` here (alpha = 0.1 with
    beta = 0.9 is lr = 0.01). We keep PyTorch's form so that results match ``torch.optim``.

    ``weight_decay = lambda / m`` gives the same gradient as adding the course's L2 penalty
    ``lambda / (2m) * sum ||W||_F^2`` to the loss (:func:`l2_penalty`); use one or the other.

    Args:
        params: Parameters/Tensors, or parameter-group dicts (see :class:`Optimizer`).
        lr: the learning rate (>= 0).
        momentum: beta, in [0, 1); 0 is plain gradient descent.
        nesterov: Nesterov momentum (needs momentum > 0).
        weight_decay: the L2 coefficient (>= 0), applied to regularized parameters only.

    State per parameter: ``velocity`` (only when momentum > 0).

    >>> import numpy as np, cnnlab as cl
    >>> w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.shape, float(w.data[0, 0])
    ((2, 3), 0.8)
    """

    state_spec = {"velocity": "array"}  # noqa: RUF012

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    def _validate(self, group):
        check_nonnegative("SGD", group, "lr")
        check_beta("SGD", group, "momentum")
        check_nonnegative("SGD", group, "weight_decay")
        if not isinstance(group["nesterov"], (bool, np.bool_)):
            raise TypeError(
                f"SGD: nesterov must be True or False; received nesterov={group['nesterov']!r}"
            )
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0; received momentum=0.0")

    def _init_state(self, p):
        return {}  # the velocity is made at the first update that uses momentum

    def _update(self, p, g, group, state):
        lr, beta = group["lr"], group["momentum"]
        g = with_l2(p, g, group["weight_decay"])
        if beta == 0:
            p.data -= lr * g
            return
        v = state.get("velocity")
        if v is None:
            v = state["velocity"] = np.zeros_like(p.data)
        np.multiply(v, beta, out=v)
        v += g  # v = beta * v + g
        p.data -= lr * (g + beta * v) if group["nesterov"] else lr * v
