"""Predictor: a model traced once per input shape, then replayed as plain NumPy calls.

Calling a model runs its Python code: every layer's ``forward``, the checks of every function,
a Tensor for every result. For a batch of 256 images that is nothing beside the arithmetic;
for one image it is most of the time (LeNet-5: ~60 us of arithmetic in ~160 us). A Predictor
runs the model once on an input of the given shape in eval mode, records the ops it applies
(``cnnlab.tensor.record_ops``), and from then on runs only those ops' forward formulas, on
arrays, in order. On the way it does what an inference engine does:

* batch norm after a convolution is folded into it. In eval mode batch norm is an affine map
  per channel, y = s * z + t with s = gamma / sqrt(var + eps), t = beta - s * mean, and z =
  conv(x, W) + b is linear in W and b, so y = conv(x, s W) + (s b + t): one layer fewer;
* a ReLU after a convolution is applied in place on the convolution's output;
* a convolution whose batch fits one chunk runs prepared (``Conv2d.prepared``): its buffers,
  window views and kernel matrix are made once, so a call is a few NumPy calls.

The weights are copied when a shape is first traced: a Predictor made before training goes on
giving the old model's answers for the shapes it has seen; call ``reset()`` (or make a new one)
after the weights change. Like ``torch.jit.trace``, it records what one run did: a forward that
branches on the input's values, or computes on ``.data`` outside cnnlab's ops, does not replay.
The trace is checked by default: the Predictor and the model itself are run on a second input
and must agree (to float rounding), else the Predictor refuses with an error.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from cnnlab.ops.activation import ReLU
from cnnlab.ops.conv import Conv2d
from cnnlab.ops.elementwise import Add
from cnnlab.ops.linear import Linear
from cnnlab.ops.normalization import BatchNorm
from cnnlab.tensor import Tensor, no_grad, record_ops

__all__ = ["Predictor"]


class Predictor:
    """``predict = Predictor(model); y = predict(x)``: the model's eval-mode forward, fast.

    Args:
        model: a Module (or any callable of one Tensor) returning a Tensor or a tuple of them.
        check: run the first trace of each shape against the model on a second input (default
            True); it costs two more forward passes per new input shape.

    ``predict(x)`` takes an ndarray (or a Tensor) of one input, (N, ...), and returns the
    output as an ndarray (a tuple of them for a model with several outputs). The model is
    traced in eval mode (its modes are restored afterwards) without building a graph. One call
    runs at a time (the plans reuse their buffers); the model's weights are read when a shape
    is first seen, see :meth:`reset`.

    >>> import numpy as np
    >>> from cnnlab import models, nn
    >>> model = models.lenet5(seed=0)
    >>> predict = nn.Predictor(model)
    >>> predict(np.zeros((1, 28, 28, 1), np.float32)).shape
    (1, 10)
    """

    def __init__(self, model, *, check: bool = True):
        if not callable(model):
            raise TypeError(f"Predictor: model must be a Module or a callable; received "
                            f"{type(model).__name__}")
        self.model, self.check = model, bool(check)
        self._plans = {}
        self._lock = threading.Lock()

    def __call__(self, x):
        # as the model would get it from cl.tensor(x): Python lists of floats become float32
        data = x.data if isinstance(x, Tensor) else x if isinstance(x, np.ndarray) else Tensor(
            x).data
        key = (data.shape, data.dtype.str)
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = _Plan(self.model, data)
                if self.check:
                    plan.check(self.model, data)
                self._plans[key] = plan
            return plan.run(data)

    def reset(self) -> None:
        """Forget the traces: the next call of each shape traces the model (and its weights)
        again. Call it after training or loading new weights."""
        with self._lock:
            self._plans.clear()

    def __repr__(self):
        return f"Predictor({type(self.model).__name__}, shapes traced: {len(self._plans)})"


@contextlib.contextmanager
def _eval_mode(model):
    """The model (every module in it) in eval mode, without a graph; the modes restored after."""
    modules = list(model.modules()) if hasattr(model, "modules") else []
    modes = [(m, m.training) for m in modules]
    for m in modules:
        m.training = False
    try:
        with no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def _eval_forward(model, data: np.ndarray):
    with _eval_mode(model):
        return model(Tensor(data))


def _outputs(out, model) -> list:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, Tensor) for t in out):
        return list(out)
    raise TypeError(f"Predictor: {type(model).__name__} returned {type(out).__name__}; "
                    f"expected a Tensor or a tuple of Tensors")


class _Step:
    """One op of the plan: ``values[out] = run(*values[ins])``, then the slots in ``free``
    (last read here) are let go."""

    __slots__ = ("fn", "ins", "out", "run", "w", "b", "relu", "free")

    def __init__(self, fn, ins, out):
        self.fn, self.ins, self.out = fn, ins, out
        self.run, self.w, self.b, self.relu, self.free = None, None, None, False, ()


class _Plan:
    """The ops one forward pass applied, as steps over numbered value slots: slot 0 the
    input, then constants (weights, copied) and every op's result."""

    def __init__(self, model, data: np.ndarray):
        x0 = Tensor(data)
        with _eval_mode(model), record_ops() as ops:
            out = model(x0)
        outs = _outputs(out, model)
        self.single = isinstance(out, Tensor)
        self.traced = [t.data for t in outs]
        slot = {id(x0): 0}
        self.values, shapes, steps = [None], {0: data.shape}, []

        def constant(value):
            self.values.append(value)
            return len(self.values) - 1

        for fn, inputs, result in ops:  # the tensors in ops stay alive: ids are not reused
            ins = []
            for t in inputs:
                if t is None:
                    ins.append(constant(None))
                elif id(t) not in slot:  # a weight, a buffer, or a tensor made in forward
                    slot[id(t)] = constant(np.array(t.data))  # a copy: the weights as now
                    shapes[slot[id(t)]] = t.shape
                    ins.append(slot[id(t)])
                else:
                    ins.append(slot[id(t)])
            slot[id(result)] = constant(None)
            shapes[slot[id(result)]] = result.shape
            steps.append(_Step(fn, ins, slot[id(result)]))
        self.out_slots = [slot[id(t)] if id(t) in slot else constant(np.array(t.data))
                          for t in outs]
        self.steps = _fold(steps, self.values, self.out_slots)
        for step in self.steps:
            _prepare(step, shapes, self.values)
        _mark_free(self.steps, self.out_slots)

    def run(self, data: np.ndarray):
        v = list(self.values)
        v[0] = data
        for step in self.steps:
            v[step.out] = step.run(*[v[i] for i in step.ins])
            for k in step.free:
                v[k] = None
        outs = [v[k] for k in self.out_slots]
        return outs[0] if self.single else tuple(outs)

    def check(self, model, data: np.ndarray) -> None:
        """The replay must give the traced output, and the model's output on a second input."""
        rng = np.random.default_rng(0)
        spread = float(np.std(data)) or 1.0
        other = (data + spread * rng.standard_normal(data.shape)).astype(data.dtype)
        pairs = [(self.run(data), self.traced),
                 (self.run(other), [t.data for t in _outputs(_eval_forward(model, other), model)])]
        tol = float(np.sqrt(np.finfo(data.dtype).eps))  # float32: 3.5e-4; float64: 1.5e-8
        for mine, theirs in pairs:
            mine = [mine] if self.single else list(mine)
            for a, b in zip(mine, theirs):
                scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
                if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=tol * scale):
                    worst = (float(np.max(np.abs(a - b), initial=0.0)) if a.shape == b.shape
                             else f"shape {a.shape} against {b.shape}")
                    raise RuntimeError(
                        f"Predictor: replaying the ops recorded from {type(model).__name__} does "
                        f"not reproduce its forward (largest difference {worst}); its forward "
                        f"computes something outside cnnlab's ops (on .data or .numpy()) or "
                        f"branches on the input's values. Call the model itself instead."
                    )


# ops whose result is a new array, which a ReLU after them may overwrite
_FRESH = (Conv2d, Add, Linear)


def _fold(steps: list, values: list, out_slots: list) -> list:
    """Batch norm (eval) into the convolution before it, and a ReLU into the convolution (the
    residual add, the dense layer) before it, where that result is read by nothing else.
    Returns the steps left."""
    reads = {}
    for step in steps:
        for k in step.ins:
            reads[k] = reads.get(k, 0) + 1
    for k in out_slots:
        reads[k] = reads.get(k, 0) + 1
    maker = {step.out: step for step in steps}
    for step in steps:
        if isinstance(step.fn, Conv2d):
            w = values[step.ins[1]]
            step.w, step.b = w, values[step.ins[2]] if len(step.ins) > 2 else None
    gone = set()
    for step in steps:
        src = maker.get(step.ins[0]) if step.ins else None
        if (src is None or not isinstance(src.fn, _FRESH) or src.relu
                or reads.get(step.ins[0]) != 1):
            continue
        if (isinstance(step.fn, BatchNorm) and not step.fn.training
                and isinstance(src.fn, Conv2d)):
            gamma, beta = (values[k] for k in step.ins[1:3]) if len(step.ins) == 3 else (None,
                                                                                         None)
            mean = np.asarray(step.fn.running_mean, np.float64)
            var = np.asarray(step.fn.running_var, np.float64)
            scale = 1.0 / np.sqrt(var + step.fn.eps)  # (C_out,)
            if gamma is not None:
                scale = scale * gamma
            shift = -scale * mean + (0.0 if beta is None else beta)
            b = shift if src.b is None else shift + scale * src.b
            src.w = (src.w * scale).astype(src.w.dtype)  # each filter o scaled by s_o
            src.b = b.astype(src.w.dtype)
        elif isinstance(step.fn, ReLU):
            src.relu = True
        else:
            continue
        src.out = step.out  # the convolution now writes what the folded step wrote
        maker[step.out] = src
        gone.add(id(step))
    return [step for step in steps if id(step) not in gone]


def _prepare(step: _Step, shapes: dict, values: list) -> None:
    """The step's run: a prepared convolution, or the op's own forward on arrays."""
    fn = step.fn
    fn.needs_grad = (False,) * len(step.ins)
    if isinstance(fn, BatchNorm):  # not folded: its running statistics copied, like weights
        fn.running_mean, fn.running_var = np.array(fn.running_mean), np.array(fn.running_var)
    if isinstance(fn, Conv2d):
        step.run = fn.prepared(shapes[step.ins[0]], step.w, step.b, step.relu)
        step.ins = step.ins[:1]  # the weights are in the prepared function
    elif step.relu:
        forward = fn.forward

        def run_then_relu(*arrays):
            y = forward(*arrays)  # a new array (_FRESH): max(y, 0) in place
            if not y.flags.c_contiguous:  # (an add of transposed views): no rows to view
                return np.maximum(y, y.dtype.type(0))
            # image rows (N*H, W*C) (or (N, F)): maximum against a row of zeros, as ReLU does
            rows = y.reshape(-1, y.shape[-2] * y.shape[-1]) if y.ndim == 4 else y.reshape(
                -1, y.shape[-1]) if y.ndim > 1 else y
            np.maximum(rows, np.zeros(rows.shape[-1:], y.dtype), out=rows)
            return y

        step.run = run_then_relu
    else:
        step.run = fn.forward


def _mark_free(steps: list, out_slots: list) -> None:
    """Each intermediate result is let go after the step that reads it last."""
    last = {}
    for i, step in enumerate(steps):
        for k in step.ins:
            last[k] = i
    made = {step.out for step in steps}
    keep = set(out_slots)
    for i, step in enumerate(steps):
        step.free = tuple(k for k in set(step.ins) if last[k] == i and k in made
                          and k not in keep)
