"""Gradient checking by two-sided finite differences (float64).

For a function ``f`` of tensors, pick a random cotangent ``v`` shaped like ``f``'s output and
compare, for each input ``x``, the analytic gradient ``g = d<v, f(x)>/dx`` from ``backward``
with the numerical one ``g'_i = (<v, f(x + eps e_i)> - <v, f(x - eps e_i)>) / (2 eps)``. The
score is the relative difference of the course notes, ``||g - g'||_2 / (||g||_2 + ||g'||_2)``;
below 1e-7 the backward is right.
"""

from __future__ import annotations

import numpy as np

from cnnlab.tensor import Tensor

__all__ = ["gradcheck", "gradcheck_model", "GradcheckError", "GradcheckResult"]


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when ``tol`` is given and the worst difference exceeds it."""


class GradcheckResult(float):
    """The worst relative difference (a float), with details of where it happened.

    Attributes: ``per_input`` (one relative difference per checked input, None for inputs not
    checked), ``input`` (index of the worst input), ``index`` (the element of that input with the
    largest absolute error), ``analytic`` and ``numeric`` (the two values there).
    """

    per_input: list
    input: int
    index: tuple
    analytic: float
    numeric: float

    def describe(self) -> str:
        return (
            f"worst relative difference {float(self):.3e} in input {self.input} at element "
            f"{self.index}: backward gives {self.analytic!r}, finite differences give "
            f"{self.numeric!r}"
        )


def _relative(g: np.ndarray, n: np.ndarray) -> float:
    denom = np.linalg.norm(g) + np.linalg.norm(n)
    return 0.0 if denom == 0 else float(np.linalg.norm(g - n) / denom)


def gradcheck(fn, inputs, eps: float = 1e-6, *, tol: float | None = None, seed: int = 0,
              wrt=None) -> GradcheckResult:
    """Check ``fn``'s backward against two-sided finite differences in float64.

    Args:
        fn: a function of tensors returning a Tensor (any shape).
        inputs: a sequence of arrays or Tensors. Floating ones are converted to float64 and
            checked; others (integer labels, say) are passed through unchanged.
        eps: the finite-difference step.
        tol: if given, raise :class:`GradcheckError` naming the input and element when the worst
            relative difference exceeds it.
        seed: seed of the random cotangent the output is projected on.
        wrt: indices of the inputs to check (default: every floating input).

    Returns:
        the worst relative difference over the checked inputs, as a :class:`GradcheckResult`.

    >>> import numpy as np, cnnlab as cl
    >>> x = np.random.default_rng(0).normal(size=(3, 4))
    >>> cl.gradcheck(lambda t: (t * t).sum(), [x]) < 1e-7
    True
    """
    arrays = []
    for x in inputs:
        a = x.data if isinstance(x, Tensor) else np.asarray(x)
        arrays.append(a.astype(np.float64) if a.dtype.kind == "f" else a)
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    if not wrt:
        raise ValueError("gradcheck: no floating-point input to check")

    def run(values, grad_on):
        ts = [Tensor(a, requires_grad=(i in grad_on)) for i, a in enumerate(values)]
        return fn(*ts), ts

    out, ts = run(arrays, set(wrt))
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor; received {type(out).__name__}")
    v = np.random.default_rng(seed).normal(size=out.shape)
    if out.requires_grad:
        out.backward(v)
    analytic = []
    for i in wrt:
        g = ts[i].grad
        analytic.append(np.zeros_like(arrays[i]) if g is None else g)

    def objective(values):
        with_no_graph = run(values, set())[0]
        return float(np.sum(v * with_no_graph.data))

    per_input = [None] * len(arrays)
    worst = (-1.0, 0, (), 0.0, 0.0)
    for i, g in zip(wrt, analytic):
        x = arrays[i].copy()
        values = list(arrays)
        values[i] = x
        numeric = np.zeros_like(x)
        flat, nflat = x.reshape(-1), numeric.reshape(-1)
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            plus = objective(values)
            flat[k] = original - eps
            minus = objective(values)
            flat[k] = original
            nflat[k] = (plus - minus) / (2 * eps)
        rel = _relative(g, numeric)
        per_input[i] = rel
        if rel > worst[0]:
            if g.size:
                k = int(np.argmax(np.abs(g - numeric)))
                idx = np.unravel_index(k, g.shape)
                worst = (rel, i, tuple(int(j) for j in idx), float(g[idx]), float(numeric[idx]))
            else:
                worst = (rel, i, (), 0.0, 0.0)

    result = GradcheckResult(worst[0])
    result.per_input = per_input
    result.input, result.index, result.analytic, result.numeric = worst[1:]
    if tol is not None and result > tol:
        raise GradcheckError(f"gradcheck: {result.describe()} (tolerance {tol:g})")
    return result


class ModelGradcheckResult(GradcheckResult):
    """The worst relative difference over a model's parameters; ``per_parameter`` maps each
    parameter's name to its own relative difference (over the elements checked)."""

    per_parameter: dict


def gradcheck_model(model, x, y, loss=None, *, max_elements: int | None = 20, eps: float = 1e-6,
                    seed: int = 0, on_parameter=None) -> ModelGradcheckResult:
    """Check the gradient of ``loss(model(x), y)`` with respect to every parameter.

    The model must be in float64 (``model.double()``): float32 differences are rounding noise
    at this step size. Dropout must be off (``model.eval()``) so the loss is a fixed function of
    the weights; batch norm may be in either mode (training mode uses the batch's statistics,
    which is deterministic). For large models only a random sample of ``max_elements`` entries
    of each parameter is perturbed (None: all of them); the relative difference is then taken
    over those entries. The model is left as it was found: weights, buffers (batch norm's
    running statistics, which training-mode calls would update) and ``.grad`` (None).

    ``on_parameter(name, rel, checked, size)``, when given, is called after each parameter
    (its relative difference, the entries perturbed and the entries it has): a progress report
    for large models, where each entry costs two forward passes.
    """
    from cnnlab.nn.dropout import Dropout
    from cnnlab.ops.loss import cross_entropy

    wrong = [(n, p.data.dtype) for n, p in model.named_parameters() if p.data.dtype != np.float64]
    if wrong:
        raise ValueError(
            f"gradcheck_model: parameters must be float64 for finite differences; "
            f"{wrong[0][0]} is {wrong[0][1]} ({len(wrong)} such); call model.double() first"
        )
    if any(isinstance(m, Dropout) and m.training and m.rate > 0 for m in model.modules()):
        raise ValueError(
            "gradcheck_model: the model has dropout in training mode, which draws a new mask "
            "on every call; call model.eval() first"
        )
    loss = loss or cross_entropy
    x = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float64)
    params = list(model.named_parameters())
    saved = model.state_dict()
    try:
        return _gradcheck_params(model, params, x, y, loss, max_elements, eps, seed,
                                 on_parameter)
    finally:
        model.load_state_dict(saved)
        for _, p in params:
            p.grad = None


def _gradcheck_params(model, params, x, y, loss, max_elements, eps, seed, on_parameter=None):

    def objective() -> Tensor:
        return loss(model(Tensor(x)), y)

    for _, p in params:
        p.grad = None
    objective().backward()
    rng = np.random.default_rng(seed)
    per, worst = {}, (-1.0, "", (), 0.0, 0.0)
    for name, p in params:
        if not p.requires_grad:
            continue
        analytic = np.zeros_like(p.data) if p.grad is None else p.grad
        flat = p.data.reshape(-1)
        idx = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            idx = rng.choice(flat.size, size=max_elements, replace=False)
        numeric = np.empty(len(idx))
        for j, k in enumerate(idx):
            original = flat[k]
            flat[k] = original + eps
            plus = float(objective().data)
            flat[k] = original - eps
            minus = float(objective().data)
            flat[k] = original
            numeric[j] = (plus - minus) / (2 * eps)
        g = analytic.reshape(-1)[idx]
        rel = _relative(g, numeric)
        per[name] = rel
        if on_parameter is not None:
            on_parameter(name, rel, len(idx), flat.size)
        if rel > worst[0]:
            j = int(np.argmax(np.abs(g - numeric)))
            worst = (rel, name, (int(idx[j]),), float(g[j]), float(numeric[j]))
    result = ModelGradcheckResult(max(worst[0], 0.0))
    result.per_parameter = per
    result.per_input = list(per.values())
    result.input, result.index, result.analytic, result.numeric = worst[1:]
    return result
