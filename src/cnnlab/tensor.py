"""Tensor and the reverse-mode autograd engine.

A :class:`Tensor` wraps a NumPy array (``.data``). When it ``requires_grad``, every operation on
it records a :class:`Function` node: the op's ``forward`` computed the output from the input
arrays and kept what its ``backward`` needs (the "cache" of the course notes); ``backward(gy)``
returns one gradient per input. ``Tensor.backward()`` sorts the graph topologically and sweeps it
in reverse, adding up the gradients of a tensor that is used more than once.

The engine is this file; the operations live in :mod:`cnnlab.ops`.
"""

from __future__ import annotations

import contextlib
import copy
import threading

import numpy as np

__all__ = [
    "Tensor", "Function", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "record_ops",
]

_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block (per thread)."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    previous = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = previous


def no_grad():
    """Context manager (and decorator) in which operations build no graph (inference).

    >>> import cnnlab as cl
    >>> x = cl.tensor([1.0, 2.0], requires_grad=True)
    >>> with cl.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """
    return _grad_mode(False)


def enable_grad():
    """Context manager that turns graph building back on inside a :func:`no_grad` block."""
    return _grad_mode(True)


_recorders = [0]  # how many threads are recording (a cheap test in Function.apply)
_recorders_lock = threading.Lock()


@contextlib.contextmanager
def record_ops():
    """Context manager that lists, in order, every op this thread applies inside it: a list of
    ``(function, inputs, output, settings)``, ``settings`` a dict of the function's settings as
    they were before its forward ran (its __init__ arguments, not its cache): those of a
    :meth:`Function.replica` taken then, so ``type(function).from_settings(settings)`` is the
    op before its forward (its Generator, if it draws one, not yet drawn from).
    :class:`cnnlab.nn.Predictor` traces models with it."""
    if getattr(_state, "recording", None) is not None:
        raise RuntimeError("record_ops: this thread is already recording (a Predictor cannot "
                           "be called from inside the forward it is tracing)")
    ops = []
    _state.recording = ops
    with _recorders_lock:
        _recorders[0] += 1
    try:
        yield ops
    finally:
        with _recorders_lock:
            _recorders[0] -= 1
        _state.recording = None


def _default_dtype(array: np.ndarray, from_python: bool) -> np.ndarray:
    """float32 by default; float64 kept when an ndarray of float64 is given; ints/bools kept."""
    if array.dtype.kind == "f":
        if from_python or array.dtype not in (np.float32, np.float64):
            return array.astype(np.float32)
        return array
    if array.dtype.kind in "iub":
        return array
    raise TypeError(
        f"tensor: expected a numeric array (float, int or bool); received dtype {array.dtype}"
    )


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Attributes:
        data: the ``numpy.ndarray`` holding the values.
        grad: after ``backward()``, an ndarray of the same shape and dtype (leaves only, unless
            :meth:`retain_grad` was called), else None.
        requires_grad: whether operations on this tensor are recorded for differentiation.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "__weakref__")
    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        from_python = not isinstance(data, (np.ndarray, np.generic))
        array = np.asarray(data, dtype=dtype)
        if dtype is None:
            array = _default_dtype(array, from_python)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(
                "tensor: only floating-point tensors can require gradients; "
                f"received dtype {array.dtype}"
            )
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None  # the Function that produced this tensor, when recorded
        self._retain = False

    # ----------------------------------------------------------------- basic properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self):
        return self.data.item()

    def detach(self) -> Tensor:
        """A tensor sharing the same data, cut from the graph (requires_grad False)."""
        return Tensor(self.data)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after ``backward()``."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def astype(self, dtype) -> Tensor:
        from cnnlab.ops.elementwise import Cast

        return Cast(dtype).apply(self)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.dtype != np.float32:
            extra = f", dtype={self.dtype}" + extra
        return f"tensor({body}{extra})"

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None) -> None:
        """Reverse-mode sweep: fill ``.grad`` of every leaf this tensor depends on.

        ``grad`` is d(something)/d(self); it defaults to 1 for a tensor with one element. Leaf
        gradients are accumulated (``+=``) across calls, as in PyTorch: zero them between steps.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be omitted only for a tensor with one element; "
                    f"received shape {self.shape}: pass grad= of that shape"
                )
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward: grad has shape {grad.shape} but the tensor has shape {self.shape}"
                )

        order = _topological_order(self)
        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            fn = node._ctx
            if fn is None or node._retain:
                if node.grad is None:
                    node.grad = np.array(g, dtype=node.dtype, copy=True)
                else:
                    node.grad += g
                if fn is None:
                    continue
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for inp, gi in zip(fn.inputs, input_grads):
                if gi is None or inp is None or not inp.requires_grad:
                    continue
                if gi.shape != inp.shape:  # an internal invariant, not a user error
                    raise AssertionError(
                        f"{type(fn).__name__}.backward returned a gradient of shape {gi.shape} "
                        f"for an input of shape {inp.shape}"
                    )
                key = id(inp)
                if key in grads:
                    grads[key] = grads[key] + gi  # the tensor is used twice: add both
                else:
                    grads[key] = gi

    # ----------------------------------------------------------------- operators
    def __add__(self, other):
        from cnnlab.ops.elementwise import add

        return add(self, other)

    def __radd__(self, other):
        from cnnlab.ops.elementwise import add

        return add(other, self)

    def __sub__(self, other):
        from cnnlab.ops.elementwise import sub

        return sub(self, other)

    def __rsub__(self, other):
        from cnnlab.ops.elementwise import sub

        return sub(other, self)

    def __mul__(self, other):
        from cnnlab.ops.elementwise import mul

        return mul(self, other)

    def __rmul__(self, other):
        from cnnlab.ops.elementwise import mul

        return mul(other, self)

    def __truediv__(self, other):
        from cnnlab.ops.elementwise import div

        return div(self, other)

    def __rtruediv__(self, other):
        from cnnlab.ops.elementwise import div

        return div(other, self)

    def __pow__(self, exponent):
        from cnnlab.ops.elementwise import power

        return power(self, exponent)

    def __neg__(self):
        from cnnlab.ops.elementwise import neg

        return neg(self)

    def __matmul__(self, other):
        from cnnlab.ops.linear import matmul

        return matmul(self, other)

    def __rmatmul__(self, other):
        from cnnlab.ops.linear import matmul

        return matmul(other, self)

    def __getitem__(self, index):
        from cnnlab.ops.shape import getitem

        return getitem(self, index)

    # comparisons give plain boolean arrays, elementwise as in NumPy and PyTorch: they have no
    # gradient. (So membership tests on lists of tensors must compare identity: ``is``.)
    def __eq__(self, other):
        return self.data == _raw(other)

    def __ne__(self, other):
        return self.data != _raw(other)

    def __lt__(self, other):
        return self.data < _raw(other)

    def __le__(self, other):
        return self.data <= _raw(other)

    def __gt__(self, other):
        return self.data > _raw(other)

    def __ge__(self, other):
        return self.data >= _raw(other)

    __hash__ = object.__hash__

    # ----------------------------------------------------------------- methods
    def reshape(self, *shape):
        from cnnlab.ops.shape import reshape

        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes):
        from cnnlab.ops.shape import transpose

        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    @property
    def T(self):
        return self.transpose()

    def flatten(self, start_axis: int = 1):
        from cnnlab.ops.shape import flatten

        return flatten(self, start_axis)

    def sum(self, axis=None, keepdims: bool = False):
        from cnnlab.ops.reduce import sum as _sum

        return _sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        from cnnlab.ops.reduce import mean

        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        from cnnlab.ops.reduce import max as _max

        return _max(self, axis, keepdims)

    def exp(self):
        from cnnlab.ops.elementwise import exp

        return exp(self)

    def log(self):
        from cnnlab.ops.elementwise import log

        return log(self)

    def sqrt(self):
        from cnnlab.ops.elementwise import sqrt

        return sqrt(self)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _topological_order(root: Tensor) -> list:
    """Tensors reachable from ``root`` through recorded ops, each after all its inputs.

    Iterative depth-first search, so that long chains do not hit Python's recursion limit.
    """
    # A node is marked when it is expanded, not when it is pushed: in ``x + f(x)`` the leaf ``x`` is
    # pushed twice, and only the copy expanded last (after ``f(x)`` is finished) may place it.
    order, expanded_ids = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in expanded_ids:
            continue
        expanded_ids.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for inp in node._ctx.inputs:
                if inp is not None and inp.requires_grad and id(inp) not in expanded_ids:
                    stack.append((inp, False))
    return order


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a :class:`Tensor`. Python floats become float32; a float64 ndarray stays float64.

    >>> import cnnlab as cl
    >>> cl.tensor([[1.0, 2.0, 3.0]]).shape
    (1, 3)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


class Function:
    """One differentiable operation: ``forward`` and ``backward`` side by side.

    Subclasses take their settings (stride, axis, ...) in ``__init__`` and implement

    * ``forward(*arrays) -> ndarray``: compute the output from the input arrays and keep on
      ``self`` what ``backward`` needs (the cache), under names of its own: a forward does not
      assign its settings, so :meth:`replica` can tell the two apart;
    * ``backward(gy) -> tuple``: given gy = dL/d(output), return dL/d(input) for every input, in
      order (None where an input needs no gradient). ``self.needs_grad[i]`` tells whether input
      ``i`` wants one, so an op can skip work.

    ``apply(*inputs)`` runs forward on the inputs' arrays and, when gradients are enabled and any
    input requires one, links the output into the graph. ``replica()`` gives a new op with the
    same settings and no cache (what a tracer replays).
    """

    inputs: tuple = ()
    needs_grad: tuple = ()

    def apply(self, *inputs) -> Tensor:
        needs = tuple(t is not None and t.requires_grad for t in inputs)
        record = any(needs) and is_grad_enabled()
        self.needs_grad = needs
        trace = getattr(_state, "recording", None) if _recorders[0] else None
        # the settings as they were before forward (a Generator not yet drawn from)
        settings = None if trace is None else vars(self.replica())
        out = self.forward(*(None if t is None else t.data for t in inputs))
        result = Tensor.__new__(Tensor)
        result.data = out
        result.grad = None
        result._retain = False
        if record:
            result.requires_grad = True
            result._ctx = self
            self.inputs = inputs
        else:
            result.requires_grad = False
            result._ctx = None
        if trace is not None:
            trace.append((self, inputs, result, settings))
        return result

    def replica(self) -> Function:
        """A new op of this op's class with a deep copy of its settings and none of its cache.

        An op's settings are the attributes it holds before its forward first runs: what its
        ``__init__`` set (stride, axis, running statistics, a Generator). Its cache is what
        forward keeps on ``self`` for backward. ``apply`` sets ``needs_grad`` just before it
        calls forward, and an op's attribute dict keeps the order attributes were first set
        in, so the settings are the attributes set before ``needs_grad`` (all of them on an op
        that never ran); a forward keeps its cache under names of its own, and never assigns
        a setting. The replica's ``needs_grad`` is the class default, ``()``: set it (one flag
        per input) before calling its ``forward`` directly, as ``apply`` does.

        The copy is deep: the replica changes nothing the original holds, and draws from its
        own copy of a Generator in the state the original's is in now (before the original's
        forward, when the replica is taken then: :func:`record_ops` does). So replaying an op
        from a replica taken before its forward repeats that forward's random draws.

        >>> import numpy as np, cnnlab as cl
        >>> from cnnlab.ops.pool import MaxPooling2D
        >>> pool = MaxPooling2D((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))
        >>> y = pool.apply(cl.tensor(np.ones((1, 2, 2, 1))))
        >>> twin = pool.replica()
        >>> (twin.size, hasattr(pool, "y"), hasattr(twin, "y"))  # the pool's cache stays behind
        ((2, 2), True, False)
        """
        return type(self).from_settings(copy.deepcopy(self._settings()))

    @classmethod
    def from_settings(cls, settings: dict) -> Function:
        """An op of this class holding ``settings`` (attribute name -> value, as
        :func:`record_ops` lists them) and nothing else, as its ``__init__`` would have left
        it. The values are shared, not copied: :meth:`replica` copies."""
        op = object.__new__(cls)
        op.__dict__.update(settings)
        return op

    def _settings(self) -> dict:
        """The attributes set before ``needs_grad`` (see :meth:`replica`), not copied."""
        settings = {}
        for name, value in self.__dict__.items():
            if name == "needs_grad":
                break
            settings[name] = value
        return settings

    def forward(self, *arrays):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, gy):  # pragma: no cover - abstract
        raise NotImplementedError


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; a Python number takes the dtype of ``like`` (no float64 upcast)."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, np.number)) and like.dtype.kind == "f":
        return Tensor(np.asarray(x, dtype=like.dtype))
    if isinstance(x, np.ndarray) or like is None:
        return Tensor(x)  # Python lists of floats become float32, like cl.tensor
    return Tensor(np.asarray(x, dtype=like.dtype if like.dtype.kind == "f" else None))
