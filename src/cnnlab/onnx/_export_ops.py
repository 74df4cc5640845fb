"""The exporter's op converters: one traced cnnlab op -> ONNX nodes (private).

Each converter gets the graph under construction, the op's Function, its settings (as they
were before its forward) and its input tensors, and returns (ONNX name of the output, tag):
the tag says how a 4-D value is held in ONNX, NCHW (ONNX's images) or None (cnnlab's order).
"""

from __future__ import annotations

import numpy as np

from cnnlab.onnx._deps import numpy_helper, onnx
from cnnlab.onnx._layout import NCHW, NHWC
from cnnlab.tensor import Tensor

__all__ = ["Graph", "NoForm", "CONVERTERS", "WITH_OUTPUT", "DTYPES"]

DTYPES = {np.dtype(np.float32): 1, np.dtype(np.float64): 11}  # TensorProto FLOAT, DOUBLE


class NoForm(Exception):
    """A traced op (or one of its settings) that has no ONNX form; the message names it."""


class Graph:
    """The ONNX graph under construction; ``tags[id(tensor)]`` is NCHW or None (as held)."""

    def __init__(self, names):
        self.h = onnx().helper
        self.nodes, self.inits = [], []
        self.names = {}  # id(Tensor) -> ONNX value name
        self.tags = {}  # ONNX value name -> NCHW (the 4-D value is NCHW in ONNX) or None
        self.param_names = names  # id(Parameter or buffer) -> cnnlab name
        self.keep = []  # tensors kept alive so their ids stay theirs
        self._n = 0
        self._plain = {}

    def fresh(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, array, hint="const", name=None):
        name = name or self.fresh(hint)
        self.inits.append(numpy_helper().from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, hint=None, n_out=1, **attrs):
        outs = [self.fresh(hint or op) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op, list(inputs), outs,
                                           name=f"{hint}/{op}" if hint else outs[0], **attrs))
        return outs[0] if n_out == 1 else outs

    def value(self, t: Tensor, hint="const"):
        """The ONNX name of a traced tensor; a parameter or constant becomes an initializer."""
        if id(t) in self.names:
            return self.names[id(t)]
        name = self.param_names.get(id(t))
        self.keep.append(t)
        out = self.const(t.data, hint, name)
        self.names[id(t)] = out
        self.tags[out] = None
        return out

    def plain(self, name):
        """``name`` in cnnlab's own axis order (a Transpose for an NCHW image)."""
        if self.tags.get(name) is None:
            return name
        if name not in self._plain:
            out = self.node("Transpose", [name], hint="to_nhwc", perm=list(NHWC))
            self.tags[out] = None
            self._plain[name] = out
        return self._plain[name]

    def nchw(self, name):
        if self.tags.get(name) is NCHW:
            return name
        out = self.node("Transpose", [name], hint="to_nchw", perm=list(NCHW))
        self.tags[out] = NCHW
        return out


def _onnx_axis(tag, axis, rank):
    axis %= rank
    return NHWC[axis] if tag is NCHW else axis


def _hint_of(g, inputs):
    for t in inputs[1:2]:
        name = g.param_names.get(id(t)) if t is not None else None
        if name and name.endswith(".weight"):
            return name[: -len(".weight")]
    return None


# ------------------------------------------------------------------------ op converters
def _conv(g, fn, s, ins):
    x = g.nchw(g.value(ins[0]))
    w = ins[1]
    wname = g.param_names.get(id(w)) or g.fresh("conv.weight")
    wt = g.const(w.data.transpose(3, 2, 0, 1), name=wname)  # HWIO -> OIHW
    inputs = [x, wt]
    if len(ins) > 2 and ins[2] is not None:
        inputs.append(g.value(ins[2]))
    (pt, pb), (pl, pr) = s["pads"]
    out = g.node("Conv", inputs, hint=_hint_of(g, ins), kernel_shape=list(w.shape[:2]),
                 strides=list(s["stride"]), pads=[pt, pl, pb, pr],
                 dilations=list(s["dilation"]), group=int(s["groups"]))
    return out, NCHW


def _pool(op):
    def convert(g, fn, s, ins):
        x = g.nchw(g.value(ins[0]))
        attrs = {"kernel_shape": list(s["size"]), "strides": list(s["stride"])}
        if op != "LpPool":
            (pt, pb), (pl, pr) = s["pads"]
            attrs["pads"] = [pt, pl, pb, pr]
        if op == "AveragePool":
            attrs["count_include_pad"] = 0
        if op == "LpPool":
            p = float(s["p"])
            if p != int(p):
                raise NoForm(f"LpPooling2D with p={p} (ONNX's LpPool takes an integer p)")
            attrs["p"] = int(p)
        return g.node(op, [x], **attrs), NCHW

    return convert


def _global_avg(g, fn, s, ins):
    pooled = g.node("GlobalAveragePool", [g.nchw(g.value(ins[0]))])
    return g.node("Flatten", [pooled], axis=1), None


def _batch_norm(g, fn, s, ins):
    x = g.value(ins[0])
    rank = ins[0].ndim
    x = g.nchw(x) if rank == 4 else g.plain(x)
    c = ins[0].shape[-1]
    dt = ins[0].data.dtype
    names = []
    for t, default in ((ins[1] if len(ins) > 1 else None, np.ones(c, dt)),
                       (ins[2] if len(ins) > 2 else None, np.zeros(c, dt))):
        names.append(g.value(t) if t is not None else g.const(default, "bn"))
    for key in ("running_mean", "running_var"):
        arr = getattr(fn, key)
        names.append(g.const(np.asarray(arr, dt), name=g.param_names.get(id(arr))))
    out = g.node("BatchNormalization", [x, *names], hint=_hint_of(g, ins),
                 epsilon=float(s["eps"]), momentum=float(s["momentum"]))
    return out, NCHW if rank == 4 else None


def _linear(g, fn, s, ins):
    x = g.plain(g.value(ins[0]))
    w = ins[1]
    wname = g.param_names.get(id(w)) or g.fresh("dense.weight")
    inputs = [x, g.const(w.data.T, name=wname)]  # (in, out) -> (out, in), transB=1
    if len(ins) > 2 and ins[2] is not None:
        inputs.append(g.value(ins[2]))
    return g.node("Gemm", inputs, hint=_hint_of(g, ins), transB=1), None


def _same_tag(g, ins):
    """Names of the inputs in one common layout (constants laid out to match)."""
    runtime = [t for t in ins if id(t) in g.names]
    tags = {g.tags[g.names[id(t)]] for t in runtime}
    ranks = {t.ndim for t in runtime}
    tag = tags.pop() if len(tags) == 1 and ranks == {4} else None
    if any(t.ndim > 4 for t in ins):
        tag = None
    names = []
    for t in ins:
        if id(t) in g.names:
            names.append(g.nchw(g.names[id(t)]) if tag is NCHW else g.plain(g.names[id(t)]))
        elif tag is NCHW:  # a constant broadcast against images: (..., C) -> (1, C, 1, 1)
            a = np.asarray(t.data)
            names.append(g.const(a.reshape((1,) * (4 - a.ndim) + a.shape).transpose(NCHW)))
        else:
            names.append(g.value(t))
    return names, tag


def _elementwise(op):
    def convert(g, fn, s, ins):
        names, tag = _same_tag(g, ins)
        return g.node(op, names), tag

    return convert


def _unary(op, **fixed):
    def convert(g, fn, s, ins):
        x = g.value(ins[0])
        attrs = {k: (v(s) if callable(v) else v) for k, v in fixed.items()}
        return g.node(op, [x], **attrs), g.tags[x]

    return convert


def _softmax(op):
    def convert(g, fn, s, ins):
        x = g.value(ins[0])
        tag = g.tags[x]
        return g.node(op, [x], axis=_onnx_axis(tag, s["axis"], ins[0].ndim)), tag

    return convert


def _pow(g, fn, s, ins):
    x = g.value(ins[0])
    p = g.const(np.asarray(s["p"], ins[0].data.dtype), "exponent")
    return g.node("Pow", [x, p]), g.tags[x]


def _reshape(g, fn, s, ins, out):
    x = g.plain(g.value(ins[0]))
    shape = list(out.shape)
    if shape and ins[0].ndim and shape[0] == ins[0].shape[0]:
        shape[0] = 0  # keep the (free) batch size
    return g.node("Reshape", [x, g.const(np.asarray(shape, np.int64), "shape")]), None


def _transpose(g, fn, s, ins, out):
    x = g.value(ins[0])
    rank = ins[0].ndim
    axes = s["axes"] if s["axes"] is not None else tuple(range(rank - 1, -1, -1))
    axes = [a % rank for a in axes]
    perm = [NHWC[a] for a in axes] if g.tags[x] is NCHW else axes
    return g.node("Transpose", [x], perm=perm), None


def _concat(g, fn, s, ins):
    names, tag = _same_tag(g, ins)
    return g.node("Concat", names, axis=_onnx_axis(tag, s["axis"], ins[0].ndim)), tag


def _pad(g, fn, s, ins):
    x = g.value(ins[0])
    tag = g.tags[x]
    widths = list(s["widths"])
    rank = len(widths)
    onnx_w = [widths[NCHW[j]] for j in range(rank)] if tag is NCHW else widths
    pads = [b for b, _ in onnx_w] + [a for _, a in onnx_w]
    value = g.const(np.asarray(s["value"], ins[0].data.dtype), "pad_value")
    return g.node("Pad", [x, g.const(np.asarray(pads, np.int64), "pads"), value]), tag


def _getitem(g, fn, s, ins):
    index = s["index"]
    index = index if isinstance(index, tuple) else (index,)
    rank = ins[0].ndim
    if not all(isinstance(i, slice) for i in index) or len(index) > rank:
        raise NoForm(f"indexing with {index!r} (only slices have an ONNX form here)")
    x = g.value(ins[0])
    tag = g.tags[x]
    starts, ends, axes, steps = [], [], [], []
    for axis, sl in enumerate(index):
        if sl == slice(None):
            continue
        step = 1 if sl.step is None else sl.step
        big = np.iinfo(np.int64).max
        start = sl.start if sl.start is not None else (0 if step > 0 else big)
        end = sl.stop if sl.stop is not None else (big if step > 0 else -big)
        starts.append(start), ends.append(end), steps.append(step)
        axes.append(_onnx_axis(tag, axis, rank))
    if not axes:
        return g.node("Identity", [x]), tag
    arrays = [g.const(np.asarray(v, np.int64), k) for v, k in
              ((starts, "starts"), (ends, "ends"), (axes, "axes"), (steps, "steps"))]
    return g.node("Slice", [x, *arrays]), tag


def _reduce(op):
    def convert(g, fn, s, ins):
        x = g.plain(g.value(ins[0]))
        axes = s["axes"]
        axes = list(range(ins[0].ndim)) if axes is None else [a % ins[0].ndim for a in axes]
        keep = int(bool(s["keepdims"]))
        if op == "ReduceSum":  # axes became an input in opset 13
            a = g.const(np.asarray(axes, np.int64), "axes")
            return g.node(op, [x, a], keepdims=keep), None
        return g.node(op, [x], axes=axes, keepdims=keep), None

    return convert


def _cast(g, fn, s, ins):
    to = DTYPES.get(np.dtype(s["dtype"]))
    if to is None:
        raise NoForm(f"Cast to {s['dtype']}")
    x = g.value(ins[0])
    return g.node("Cast", [x], to=to), g.tags[x]


def _clip(g, fn, s, ins):
    x = g.value(ins[0])
    dt = ins[0].data.dtype
    bounds = [g.const(np.asarray(v, dt), "clip") if v is not None else "" for v in
              (s["lo"], s["hi"])]
    return g.node("Clip", [x, *bounds]), g.tags[x]


def _matmul(g, fn, s, ins):
    names = [g.plain(g.value(t)) for t in ins]
    return g.node("MatMul", names), None


CONVERTERS = {
    "Conv2d": _conv,
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AveragePool"),
    "LpPooling2D": _pool("LpPool"),
    "GlobalAveragePooling2D": _global_avg,
    "BatchNorm": _batch_norm,
    "Linear": _linear,
    "MatMul": _matmul,
    "ReLU": _unary("Relu"),
    "LeakyReLU": _unary("LeakyRelu", alpha=lambda s: float(s["slope"])),
    "Sigmoid": _unary("Sigmoid"),
    "Tanh": _unary("Tanh"),
    "Exp": _unary("Exp"),
    "Log": _unary("Log"),
    "Sqrt": _unary("Sqrt"),
    "Neg": _unary("Neg"),
    "Softmax": _softmax("Softmax"),
    "LogSoftmax": _softmax("LogSoftmax"),
    "Add": _elementwise("Add"),
    "Sub": _elementwise("Sub"),
    "Mul": _elementwise("Mul"),
    "Div": _elementwise("Div"),
    "Pow": _pow,
    "Concat": _concat,
    "Pad": _pad,
    "GetItem": _getitem,
    "Sum": _reduce("ReduceSum"),
    "Mean": _reduce("ReduceMean"),
    "Max": _reduce("ReduceMax"),
    "Cast": _cast,
    "ClipFunction": _clip,
}
WITH_OUTPUT = {"Reshape": _reshape, "Transpose": _transpose}
