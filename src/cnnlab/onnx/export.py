"""export: a cnnlab model as an ONNX file (opset 17), images in ONNX's NCHW order.

The model runs once in eval mode on a batch of zeros while :func:`cnnlab.tensor.record_ops`
lists the ops it applies; each op becomes ONNX nodes. Parameters become initializers under
their cnnlab names (``features.0.weight``), transposed once from HWIO to ONNX's OIHW (Dense:
(in, out) to Gemm's (out, in) with transB=1). Between ops, every image value carries a tag:
held in ONNX's NCHW or in cnnlab's NHWC order; an op that depends on the order (Flatten,
Reshape, Slice) gets a Transpose in front only where needed, so a model trained here computes
the same function in any ONNX runtime. The batch axis is free ("N").
"""

from __future__ import annotations

import os

import numpy as np

import cnnlab
from cnnlab.onnx._deps import numpy_helper, onnx
from cnnlab.onnx._layout import NCHW, NHWC
from cnnlab.onnx.errors import ONNXError
from cnnlab.tensor import Tensor, no_grad, record_ops

__all__ = ["export", "OPSET"]

OPSET = 17
_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.float64): 11}  # TensorProto FLOAT, DOUBLE


class _Graph:
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
                raise _NoForm(f"LpPooling2D with p={p} (ONNX's LpPool takes an integer p)")
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
        raise _NoForm(f"indexing with {index!r} (only slices have an ONNX form here)")
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
    to = _DTYPES.get(np.dtype(s["dtype"]))
    if to is None:
        raise _NoForm(f"Cast to {s['dtype']}")
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


_CONVERTERS = {
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
_WITH_OUTPUT = {"Reshape": _reshape, "Transpose": _transpose}


class _NoForm(Exception):
    pass


def _shape(shape, n_free=True):
    return ["N", *shape[1:]] if n_free else list(shape)


def export(model, path, input_shape, *, input_layout: str = "nchw", opset: int = OPSET):
    """Write ``model`` to ``path`` as an ONNX model; returns the ``onnx.ModelProto``.

    Args:
        model: a cnnlab Module taking one (N, H, W, C) image batch (or (N, F) features).
        path: the .onnx file to write (atomically: a temporary file renamed into place).
        input_shape: one sample's shape as cnnlab sees it, (H, W, C) (or (F,)); a leading
            batch size is accepted and ignored: the graph's batch axis is free ("N").
        input_layout: 'nchw' (default: the graph takes (N, C, H, W) like every ONNX CNN) or
            'nhwc' (the graph takes cnnlab's channels-last images).
        opset: the ai.onnx opset written (17 or later).

    The graph computes the model's eval-mode forward (dropout off, batch norm on its running
    statistics); outputs of 4-D images are NCHW ('nchw') or NHWC ('nhwc') like the input.
    """
    o = onnx()
    if input_layout not in ("nchw", "nhwc"):
        raise ValueError(f"export: input_layout must be 'nchw' or 'nhwc'; received "
                         f"{input_layout!r}")
    if not isinstance(opset, int) or opset < 17:
        raise ValueError(f"export: opset must be an int >= 17; received {opset!r}")
    shape = tuple(int(v) for v in input_shape)
    sample = shape[1:] if len(shape) == 4 else shape
    dtype = next((p.data.dtype for p in model.parameters()), np.dtype(np.float32))
    x = cnnlab.tensor(np.zeros((2, *sample), dtype))
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        with no_grad(), record_ops() as ops:
            y = model(x)
    finally:
        for m, mode in modes:
            m.training = mode
    outputs = y if isinstance(y, tuple) else (y,)
    names = {id(p): n for n, p in model.named_parameters()}
    names.update({id(b): n for n, b in model.named_buffers()})
    g = _Graph(names)
    in_shape = list(x.shape)
    if len(sample) == 3 and input_layout == "nchw":
        g.names[id(x)], g.tags["input"] = "input", NCHW
        declared = [in_shape[0], in_shape[3], in_shape[1], in_shape[2]]
    else:
        g.names[id(x)], g.tags["input"] = "input", None
        declared = in_shape
    g.keep.append(x)
    missing = []
    for fn, ins, out, settings in ops:
        kind = type(fn).__name__
        try:
            if kind in _WITH_OUTPUT:
                name, tag = _WITH_OUTPUT[kind](g, fn, settings, ins, out)
            elif kind in _CONVERTERS:
                name, tag = _CONVERTERS[kind](g, fn, settings, ins)
            else:
                raise _NoForm(kind)
        except _NoForm as e:
            missing.append(str(e))
            continue
        g.names[id(out)], g.tags[name] = name, tag
        g.keep.append(out)
    if missing:
        raise ONNXError(f"export: {type(model).__name__} uses op(s) with no ONNX form: "
                        f"{', '.join(sorted(set(missing)))}")
    out_infos = []
    elem = _DTYPES[np.dtype(dtype)]
    for i, t in enumerate(outputs):
        if id(t) not in g.names:  # the output is the input itself, or a constant
            g.names[id(t)] = g.node("Identity", [g.value(t)])
        name = g.names[id(t)]
        if t.ndim == 4 and input_layout == "nchw":
            name = g.nchw(name)
            dims = [t.shape[0], t.shape[3], t.shape[1], t.shape[2]]
        else:
            name = g.plain(name)
            dims = list(t.shape)
        final = "output" if len(outputs) == 1 else f"output_{i}"
        g.nodes.append(o.helper.make_node("Identity", [name], [final], name=f"{final}/Identity"))
        out_infos.append(o.helper.make_tensor_value_info(final, elem, _shape(dims)))
    graph = o.helper.make_graph(
        g.nodes, type(model).__name__,
        [o.helper.make_tensor_value_info("input", elem, _shape(declared))], out_infos,
        initializer=g.inits)
    proto = o.helper.make_model(graph, opset_imports=[o.helper.make_opsetid("", opset)],
                                producer_name="cnnlab", producer_version=cnnlab.__version__)
    proto.ir_version = min(proto.ir_version, 9)  # readable by onnxruntime releases of 2024 on
    try:
        o.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise ONNXError(f"export: the graph of {type(model).__name__} is not valid ONNX: "
                        f"{' '.join(str(e).split())[:300]}") from None
    from cnnlab.train.checkpoint import atomic_write

    data = proto.SerializeToString()
    atomic_write(os.fspath(path), lambda f: f.write(data))
    return proto
