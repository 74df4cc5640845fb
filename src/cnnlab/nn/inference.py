"""Predictor: a model traced once per input shape, then replayed as plain NumPy calls.

Calling a model runs its Python code: every layer's ``forward``, the checks of every function,
a Tensor for every result. For a batch of 256 images that is nothing beside the arithmetic;
for one image it is most of the time (LeNet-5: ~60 us of arithmetic in ~160 us). A Predictor
runs the model once on an input of the given shape in eval mode, records the ops it applies
(``cnnlab.tensor.record_ops``), and from then on runs only those ops' forward formulas, on
arrays, in order. On the way it does what an inference engine does:

* batch norm after a convolution is folded into it. In eval mode batch norm is an affine map
  per channel (``BatchNorm.eval_affine``), y = s * z + t with s = gamma / sqrt(var + eps),
  t = beta - s * mean, and z = conv(x, W) + b is linear in W and b, so
  y = conv(x, s W) + (s b + t): one layer fewer
  (where the convolution's result is read by nothing else, and the weights are the model's
  own, not computed by ops in forward);
* a ReLU after a convolution, a residual add or a dense layer is applied in place on that
  result (where nothing else reads it);
* a convolution runs through :func:`cnnlab.kernels.prepare`: where its batch fits one chunk,
  the prepared kernel, whose buffers, window views and kernel matrix are made once, so a call
  is a few NumPy calls (else, and for an input holding an inf or NaN, the kernel the dispatch
  selects for each call, as the model's own forward would);
* an op replayed on a large input (over 1 MB) is made anew for each call
  (``Function.replica``), so that what its forward keeps for a backward is let go with it (a
  convolution keeps nothing input-sized).

The weights are copied when a shape is first traced: a Predictor made before training goes on
giving the old model's answers for the shapes it has seen; call ``reset()`` (or make a new one)
after the weights change. Like ``torch.jit.trace``, it records what one run did: a forward that
branches on the input's values, or computes on ``.data`` outside cnnlab's ops, does not replay.
The trace is checked by default: the Predictor and the model itself are run on a second input
(the first one's values shuffled and rescaled, signs kept) and must agree (to float rounding),
else the Predictor refuses with an error. The check catches most such forwards, not all. A
trace switches the model to eval mode and back: do not train the model, or switch its modes,
in another thread meanwhile.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from cnnlab import kernels
from cnnlab.ops.activation import ReLU, relu_array
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

    ``predict(x)`` takes one input (N, ...) as an ndarray, a Tensor or nested lists, converted
    as ``cl.tensor`` converts it, and returns the output as an ndarray (a tuple of them for a
    model with several outputs). The model is traced in eval mode (its modes are restored
    afterwards) without building a graph. One call runs at a time (the plans reuse their
    buffers); the model's weights are read when a shape is first seen, see :meth:`reset`.

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
        self._lock = threading.RLock()  # re-entered only by a model calling it: record_ops says

    def __call__(self, x):
        data = (x if isinstance(x, Tensor) else Tensor(x)).data  # as the model would get it
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


# Traces flip the model's modes to eval and back: one trace at a time in the process, so that
# two Predictors of one model cannot restore each other's modes in the wrong order.
_trace_lock = threading.RLock()  # re-entered only by a model calling a Predictor: refused


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
    with _trace_lock, _eval_mode(model):
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
    (last read here) are let go. ``fn``: the op as it was before the trace's forward ran (made
    from the settings ``record_ops`` took then); ``draws``: whether it holds a Generator."""

    __slots__ = ("fn", "draws", "ins", "out", "run", "w", "b", "relu", "free")

    def __init__(self, fn, draws, ins, out):
        self.fn, self.draws, self.ins, self.out = fn, draws, ins, out
        self.run, self.w, self.b, self.relu, self.free = None, None, None, False, ()


class _Plan:
    """The ops one forward pass applied, as steps over numbered value slots: slot 0 the
    input, then constants (weights, copied) and every op's result."""

    def __init__(self, model, data: np.ndarray):
        x0 = Tensor(data)
        with _trace_lock, _eval_mode(model), record_ops() as ops:
            out = model(x0)
        outs = _outputs(out, model)
        self.single = isinstance(out, Tensor)
        self.traced = [t.data for t in outs]  # for check(), then dropped
        slot = {id(x0): 0}
        self.values, shapes, steps = [None], {0: data.shape}, []

        def constant(value, shape=None):
            self.values.append(value)
            shapes[len(self.values) - 1] = shape
            return len(self.values) - 1

        for fn, inputs, result, settings in ops:  # ops keeps the tensors alive: ids not reused
            ins = []
            for t in inputs:
                if t is None:
                    ins.append(constant(None))
                    continue
                if id(t) not in slot:  # a weight, a buffer, or a tensor made in forward
                    slot[id(t)] = constant(np.array(t.data), t.shape)  # a copy: as it is now
                ins.append(slot[id(t)])
            slot[id(result)] = constant(None, result.shape)
            # an op that draws random numbers (dropout in training mode, with its own
            # Generator) is replayed from the Generator as it was in the trace (_prepare)
            draws = any(isinstance(v, np.random.Generator) for v in settings.values())
            op = type(fn).from_settings(settings)
            steps.append(_Step(op, draws, ins, slot[id(result)]))
        self.out_slots = [slot[id(t)] if id(t) in slot else constant(np.array(t.data), t.shape)
                          for t in outs]
        self.steps = _fold(steps, self.values, self.out_slots)
        for step in self.steps:
            _prepare(step, shapes, data.itemsize)
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
        other = _second_input(data)
        traced, self.traced = self.traced, None
        theirs = [t.data for t in _outputs(_eval_forward(model, other), model)]
        for mine, ref in ((self.run(data), traced), (self.run(other), theirs)):
            for a, b in zip([mine] if self.single else mine, ref):
                a, b = np.asarray(a), np.asarray(b)
                if not _agree(a, b):
                    worst = _difference(a, b)
                    raise RuntimeError(
                        f"Predictor: replaying the ops recorded from {type(model).__name__} does "
                        f"not reproduce its forward (largest difference {worst}); its forward "
                        f"computes something outside cnnlab's ops (on .data or .numpy()), "
                        f"branches on the input's values, or is random in eval mode. Call the "
                        f"model itself instead."
                    )


def _second_input(data: np.ndarray) -> np.ndarray:
    """The check's second input: the first one's values shuffled, each scaled by a random
    factor in [0.5, 1.5], and its zeros made small positive numbers. The signs stay (a model
    taking log or sqrt stays in its domain), while the maximum, mean, spread and sum change,
    also for a constant first input (all zeros, say)."""
    rng = np.random.default_rng(0)
    flat = rng.permutation(data.reshape(-1)).astype(np.float64)
    scale = float(np.max(np.abs(flat[np.isfinite(flat)]), initial=0.0)) or 1.0
    other = flat * rng.uniform(0.5, 1.5, flat.shape)
    zeros = flat == 0
    other[zeros] = scale * rng.uniform(0.1, 1.0, int(zeros.sum()))
    if data.dtype.kind in "iu":  # integer images: rounded, within the dtype's range
        info = np.iinfo(data.dtype)
        other = np.clip(np.rint(other), info.min, info.max)
    elif data.dtype.kind == "b":
        other = rng.random(flat.shape) < 0.5
    return other.astype(data.dtype).reshape(data.shape)


def _difference(a: np.ndarray, b: np.ndarray) -> str:
    """What differs between a replay's output and the model's, for the check's error."""
    if a.shape != b.shape:
        return f"shape {a.shape} against {b.shape}"
    if b.dtype.kind not in "fc":
        return "values differ"
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return "NaN in other places"
    return f"{float(np.nanmax(np.abs(a - b), initial=0.0)):.3g}"


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the rounding that folding changes (NaN where the model gives NaN)."""
    if a.shape != b.shape:
        return False
    if b.dtype.kind not in "fc":
        return bool(np.array_equal(a, b))
    tol = float(np.sqrt(np.finfo(b.dtype).eps))  # float32: 3.5e-4; float64: 1.5e-8
    finite = np.abs(b[np.isfinite(b)])
    scale = max(1.0, float(finite.max(initial=0.0)))
    return bool(np.allclose(a, b, rtol=tol, atol=tol * scale, equal_nan=True))


# ops whose result is a new array, which a ReLU after them may overwrite
_FRESH = (Conv2d, Add, Linear)


def _fold(steps: list, values: list, out_slots: list) -> list:
    """Batch norm (eval) into the convolution before it, and a ReLU into the convolution (the
    residual add, the dense layer) before it, where that result is read by nothing else and
    the weights are constants of the trace (not computed in forward). Returns the steps left."""
    made = {0} | {step.out for step in steps}  # the input and every op's result: not constants
    reads = {}
    for step in steps:
        for k in step.ins:
            reads[k] = reads.get(k, 0) + 1
    for k in out_slots:
        reads[k] = reads.get(k, 0) + 1
    maker = {step.out: step for step in steps}
    for step in steps:  # a convolution with constant weights runs prepared (see _prepare)
        if isinstance(step.fn, Conv2d) and not any(k in made for k in step.ins[1:]):
            step.w, step.b = values[step.ins[1]], values[step.ins[2]] if len(step.ins) > 2 else None
    gone = set()
    for step in steps:
        src = maker.get(step.ins[0]) if step.ins else None
        if (src is None or not isinstance(src.fn, _FRESH) or src.relu
                or reads.get(step.ins[0]) != 1):
            continue
        affine = None  # batch norm's (s, t) in eval mode: y = s * z + t
        if (isinstance(step.fn, BatchNorm) and src.w is not None
                and not any(k in made for k in step.ins[1:])):
            gamma, beta = ([values[k] for k in step.ins[1:3]] + [None, None])[:2]
            affine = step.fn.eval_affine(gamma, beta)  # None in training mode
        if affine is not None:
            scale, shift = affine  # (C_out,) each, float64
            b = shift if src.b is None else shift + scale * src.b
            src.w = (src.w * scale).astype(src.w.dtype)  # each filter o scaled by s_o
            src.b = b.astype(src.w.dtype)
        elif isinstance(step.fn, ReLU):
            src.relu = True
        else:
            continue
        src.out = step.out  # the earlier step now writes what the folded step wrote
        maker[step.out] = src
        gone.add(id(step))
    return [step for step in steps if id(step) not in gone]


# An op replayed on inputs of more than this many bytes is made anew for each call, so that
# what its forward keeps for a backward (its cache) is let go with it; smaller ones are reused.
_FRESH_OP_BYTES = 1 << 20


def _prepare(step: _Step, shapes: dict, itemsize: int) -> None:
    """The step's run: a prepared convolution, or the op's own forward on arrays (the op as it
    was before the trace's forward, without the trace's cache)."""
    op = step.fn
    if isinstance(op, Conv2d) and step.w is not None:  # through the kernels' dispatch
        geom = op.geometry(shapes[step.ins[0]], step.w.shape, step.w.dtype)
        step.run = kernels.prepare(geom, step.w, step.b, step.relu)
        step.ins = step.ins[:1]  # the weights are in the prepared function
        return
    off = (False,) * len(step.ins)  # no input wants a gradient
    size = sum(int(np.prod(shapes[k])) for k in step.ins if shapes.get(k) is not None)
    # an op that draws random numbers starts each call from the Generator as it was in the
    # trace, as each call of the model starts from a new one: a replica of the op as it was
    # then (which itself never runs) for each call, as for a large op
    if step.draws or size * max(itemsize, 4) > _FRESH_OP_BYTES:
        def forward(*arrays):
            fresh = op.replica()
            fresh.needs_grad = off
            return fresh.forward(*arrays)
    else:
        op.needs_grad = off
        forward = op.forward
    if not step.relu:
        step.run = forward
        return

    def run_then_relu(*arrays):
        y = forward(*arrays)  # a new array (_FRESH): max(y, 0) in place where it can be
        if not isinstance(y, np.ndarray) or not y.flags.c_contiguous:
            return np.maximum(y, y.dtype.type(0))  # a NumPy scalar, or no rows to view
        return relu_array(y, out=y)

    step.run = run_then_relu


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
