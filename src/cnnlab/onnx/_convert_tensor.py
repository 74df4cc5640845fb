"""Converters for activations, products, elementwise and shape operators (private).

Layout-free operators (activations, elementwise with matching layouts, Transpose, Identity)
keep their input's perm; operators whose meaning depends on the axis order (Flatten, Reshape,
MatMul) ask for ONNX's own order first.
"""

from __future__ import annotations

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.nn.parameter import Parameter
from cnnlab.onnx import _layout
from cnnlab.onnx._builder import Unsupported
from cnnlab.onnx._layers import Clip, ConstBinary, LogSoftmax
from cnnlab.onnx._layout import NHWC

__all__ = ["CONVERTERS"]


def _keep(b, node, layer=None, fn=None, op=""):
    """A shape-preserving op applied in whatever layout its input has."""
    src = node.input[0]
    if b.is_const(src):
        raise Unsupported(f"{node.op_type} of a constant")
    b.emit(fn, [src], [node.output[0]], [b.rank(src)], [b.perm(src)], layer=layer,
           hint=b.hint(node), op=op)


def activation(kind):
    def convert(b, node, attrs):
        if kind == "LeakyRelu":
            layer = nn.LeakyReLU(float(attrs.get("alpha", 0.01)))
        else:
            layer = {"Relu": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh}[kind]()
        _keep(b, node, layer=layer, op=kind)

    return convert


def softmax(kind):
    def convert(b, node, attrs):
        src = node.input[0]
        rank = b.rank(src)
        if b.opset >= 13:
            axis = int(attrs.get("axis", -1))
            inner = _layout.axis_in(b.perm(src), axis, rank)
            layer = nn.Softmax(axis=inner) if kind == "Softmax" else LogSoftmax(inner)
            _keep(b, node, layer=layer, op=kind)
            return
        # before opset 13: the input is seen as 2-D (prod(shape[:axis]), prod(shape[axis:]))
        axis = int(attrs.get("axis", 1)) % rank
        x = b.need(src)
        f = F.softmax if kind == "Softmax" else F.log_softmax

        def run(t):
            flat = F.reshape(t, (int(np.prod(t.shape[:axis])), -1))
            return F.reshape(f(flat, axis=1), t.shape)

        b.emit(run, [x], [node.output[0]], [rank], op=kind)

    return convert


def _as_runtime(b, name):
    if b.is_const(name):
        out = b.fresh(name)
        value = cnnlab.tensor(b.consts[name])
        b.emit(lambda: value, [], [out], [b.consts[name].ndim], op="Constant")
        return out
    return b.need(name)


# ---------------------------------------------------------------------- products
def _in_cnnlab_order(b, a, bn, transposed):
    """The weight ``bn`` with its input features permuted to match ``a`` when ``a`` is an
    image flattened in cnnlab's (H, W, C) order (see ``_flatten_channels_last``)."""
    if a not in b.row_order:
        return bn
    order, w = b.row_order[a], b.const(bn)
    name = b.fresh(bn)
    b.consts[name] = np.ascontiguousarray(w[:, order] if transposed else w[order])
    return name


def gemm(b, node, attrs):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    ta, tb = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    a, bn = node.input[0], node.input[1]
    bn = _in_cnnlab_order(b, a, bn, bool(tb))
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if not b.is_const(a) and b.is_const(bn) and not ta and alpha == 1.0 and (
        c is None or (b.is_const(c) and beta == 1.0)
    ):
        w = b.const(bn)
        w = w.T if tb else w  # (in, out)
        bias = None if c is None else b.const(c)
        if bias is None or bias.size == w.shape[1] and bias.ndim <= 2 and (
            bias.ndim < 2 or bias.shape[0] == 1
        ):
            layer = nn.Dense(w.shape[0], w.shape[1], bias=bias is not None, init="zeros",
                             dtype=w.dtype)
            layer.weight = Parameter(np.ascontiguousarray(w), regularize=True)
            if bias is not None:
                layer.bias = Parameter(np.ascontiguousarray(bias.reshape(-1).astype(w.dtype)),
                                       regularize=False)
            hint = b.hint(node, bn)
            b.emit(None, [b.need(a)], [node.output[0]], [2], layer=layer, hint=hint, op="Gemm")
            return
    ins = [_as_runtime(b, a), _as_runtime(b, bn)] + ([_as_runtime(b, c)] if c else [])

    def run(x, w, bias=None):
        x = F.transpose(x, (1, 0)) if ta else x
        w = F.transpose(w, (1, 0)) if tb else w
        y = F.matmul(x, w)
        y = y * alpha if alpha != 1.0 else y
        if bias is not None:
            y = y + (bias * beta if beta != 1.0 else bias)
        return y

    b.emit(run, ins, [node.output[0]], [2], op="Gemm")


def matmul(b, node, attrs):
    a, bn = node.input
    bn = _in_cnnlab_order(b, a, bn, False)
    if not b.is_const(a) and b.is_const(bn) and b.const(bn).ndim == 2 and b.rank(a) == 2:
        w = b.const(bn)
        layer = nn.Dense(w.shape[0], w.shape[1], bias=False, init="zeros", dtype=w.dtype)
        layer.weight = Parameter(np.ascontiguousarray(w), regularize=True)
        b.emit(None, [b.need(a)], [node.output[0]], [2], layer=layer,
               hint=b.hint(node, bn), op="MatMul")
        return
    ra, rb = b.rank(a), b.rank(bn)
    if ra is None or rb is None:
        raise Unsupported("MatMul of operands of unknown rank")
    rank = max(ra, rb) if min(ra, rb) > 1 else max(ra, rb) - 1
    b.emit(F.matmul, [_as_runtime(b, a), _as_runtime(b, bn)], [node.output[0]], [rank],
           op="MatMul")


# ---------------------------------------------------------------------- elementwise
_BINARY = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y,
           "Div": lambda x, y: x / y}


def _bias_of_dense(b, src, c, out) -> bool:
    """MatMul then Add of a constant vector (how TensorFlow's exporters write a dense layer):
    the vector becomes the bias, a trainable Parameter, of the Dense layer the MatMul made."""
    step = next((s for s in reversed(b.steps) if s.outputs == (src,)), None)
    layer = b.layers.get(step.layer) if step is not None and step.layer else None
    uses = b.consumers.get(src, [])
    if not isinstance(layer, nn.Dense) or layer.bias is not None or len(uses) != 1 or (
        src in b.graph_outputs
    ) or c.size != layer.out_features or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
        return False
    layer.bias = Parameter(np.ascontiguousarray(c.reshape(-1).astype(layer.weight.dtype)),
                           regularize=False)
    b.alias(out, src, None)
    return True


def binary(kind):
    def convert(b, node, attrs):
        x, y = node.input
        if b.is_const(x) and b.is_const(y):
            b.consts[node.output[0]] = _BINARY[kind](b.consts[x], b.consts[y])
            return
        if b.is_const(x) or b.is_const(y):
            const_first = b.is_const(x)
            src, c = (y, b.consts[x]) if const_first else (x, b.consts[y])
            if kind == "Add" and _bias_of_dense(b, src, c, node.output[0]):
                return
            rank = b.rank(src)
            if rank is None:
                raise Unsupported(f"{kind} with an input of unknown rank")
            perm = b.perm(src) if c.ndim <= rank else None
            src = b.need(src, perm)
            layer = ConstBinary(kind, b.const_in(c, perm, rank), const_first)
            b.emit(None, [src], [node.output[0]], [max(rank, c.ndim)], [perm], layer=layer,
                   hint=b.hint(node), op=kind)
            return
        rx, ry = b.rank(x), b.rank(y)
        if rx is None or ry is None:
            raise Unsupported(f"{kind} with an input of unknown rank")
        same = rx == ry and b.perm(x) == b.perm(y)
        perm = b.perm(x) if same else None
        ins = [b.need(x, perm), b.need(y, perm)]
        b.emit(_BINARY[kind], ins, [node.output[0]], [max(rx, ry)], [perm], op=kind)

    return convert


def clip(b, node, attrs):
    if b.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo = b.optional_const(node, 1, "Clip min")
        hi = b.optional_const(node, 2, "Clip max")
    lo = None if lo is None else float(np.asarray(lo).reshape(()))
    hi = None if hi is None else float(np.asarray(hi).reshape(()))
    _keep(b, node, layer=Clip(lo, hi), op="Clip")


def dropout(b, node, attrs):
    mask = node.output[1] if len(node.output) > 1 else ""
    if mask and (b.consumers.get(mask) or mask in b.graph_outputs):
        raise Unsupported("Dropout with the mask output")
    if b.opset >= 12:
        rate = b.optional_const(node, 1, "Dropout ratio", np.float32(0.5))
        training = b.optional_const(node, 2, "Dropout training_mode", np.bool_(False))
        if bool(np.asarray(training)) and float(np.asarray(rate)) != 0.0:
            raise Unsupported("Dropout with training_mode=True (a random mask)")
    else:
        rate = attrs.get("ratio", 0.5)
    _keep(b, node, layer=nn.Dropout(float(np.asarray(rate))), op="Dropout")


def identity(b, node, attrs):
    src = node.input[0]
    if b.is_const(src):
        b.consts[node.output[0]] = b.consts[src]
        return
    b.alias(node.output[0], src, b.perm(src))


# ---------------------------------------------------------------------- shape
def concat(b, node, attrs):
    names = list(node.input)
    axis = int(attrs["axis"])
    if all(b.is_const(n) for n in names):
        b.consts[node.output[0]] = np.concatenate([b.consts[n] for n in names], axis=axis)
        return
    runtime = [n for n in names if not b.is_const(n)]
    rank = b.rank(runtime[0])
    perms = {b.perm(n) for n in runtime}
    perm = perms.pop() if len(perms) == 1 else None
    ins = []
    for n in names:
        if b.is_const(n):
            out = b.fresh(n)
            value = cnnlab.tensor(b.const_in(b.consts[n], perm, rank))
            b.emit(lambda v=value: v, [], [out], [rank], [perm], op="Constant")
            ins.append(out)
        else:
            ins.append(b.need(n, perm))
    inner = _layout.axis_in(perm, axis, rank)
    b.emit(lambda *ts: cnnlab.concat(list(ts), axis=inner), ins, [node.output[0]], [rank],
           [perm], op="Concat")


def _flatten_channels_last(b, src, out) -> bool:
    """Flatten an image held channels-last in cnnlab's own order, when every use of the
    result is the data input of a Gemm or MatMul with constant weights: their weight rows are
    permuted once, here, instead of the image being transposed at every call.

    ONNX flattens (C, H, W); cnnlab holds (H, W, C). With ``order[k]`` the ONNX feature at
    cnnlab's position k, A_onnx @ W = A_cnnlab @ W[order] (rows of W, which is (in, out)).
    """
    shape = b.shapes.get(src)
    if b.perm(src) != NHWC or shape is None or None in shape[1:] or out in b.graph_outputs:
        return False
    uses = b.consumers.get(out, [])
    for node, i in uses:
        if i != 0 or node.op_type not in ("Gemm", "MatMul") or not b.is_const(node.input[1]):
            return False
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Gemm" and "transA" in attrs and attrs["transA"].i:
            return False
    if not uses:
        return False
    _, c, h, w = shape
    b.row_order[out] = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    b.emit(lambda t: F.reshape(t, (t.shape[0], -1)), [src], [out], [2], op="Flatten")
    return True


def flatten(b, node, attrs):
    src = node.input[0]
    rank = b.rank(src)
    axis = int(attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis  # in [0, rank]: 0 and rank are both allowed
    if b.is_const(src):
        a = b.consts[src]
        b.consts[node.output[0]] = a.reshape(int(np.prod(a.shape[:axis])), -1)
        return
    if axis == 1 and rank == 4 and _flatten_channels_last(b, src, node.output[0]):
        return
    x = b.need(src)
    b.emit(lambda t: F.reshape(t, (int(np.prod(t.shape[:axis])), -1)), [x], [node.output[0]],
           [2], op="Flatten")


def _target(shape, spec, allowzero):
    out = [shape[i] if (v == 0 and not allowzero) else int(v) for i, v in enumerate(spec)]
    return tuple(out)


def reshape(b, node, attrs):
    src, spec = node.input[0], [int(v) for v in b.const(node.input[1], "Reshape shape")]
    allowzero = int(attrs.get("allowzero", 0))
    if b.is_const(src):
        a = b.consts[src]
        b.consts[node.output[0]] = a.reshape(_target(a.shape, spec, allowzero))
        return
    shape = b.shapes.get(src)
    if (len(spec) == 2 and b.rank(src) == 4 and shape is not None and shape[0] is not None
            and spec[0] in (shape[0], 0) and spec[1] in (-1, int(np.prod(shape[1:])))
            and _flatten_channels_last(b, src, node.output[0])):
        return  # a flatten written as Reshape (PyTorch's dynamo exporter)
    x = b.need(src)
    b.emit(lambda t: F.reshape(t, _target(t.shape, spec, allowzero)), [x], [node.output[0]],
           [len(spec)], op="Reshape")


def transpose(b, node, attrs):
    src = node.input[0]
    rank = b.rank(src)
    p = tuple(attrs.get("perm", range(rank - 1, -1, -1)))
    if b.is_const(src):
        b.consts[node.output[0]] = np.ascontiguousarray(b.consts[src].transpose(p))
        return
    have = b.perm(src) or tuple(range(rank))
    inv = _layout.inverse(p)
    b.alias(node.output[0], src, tuple(inv[q] for q in have))


def pad(b, node, attrs):
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise Unsupported(f"Pad mode {mode!r} (constant only)")
    src = node.input[0]
    rank = b.rank(src)
    if b.opset < 11:
        pads, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
        axes = list(range(rank))
    else:
        pads = [int(v) for v in b.const(node.input[1], "Pad pads")]
        value = b.optional_const(node, 2, "Pad constant_value", 0.0)
        value = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0
        axes = b.optional_const(node, 3, "Pad axes")
        axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    if min(pads, default=0) < 0:
        raise Unsupported("Pad with negative pads (cropping)")
    k = len(axes)
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + k])
    perm = b.perm(src)
    inner = widths if perm is None else [widths[p] for p in perm]
    b.emit(lambda t: cnnlab.pad(t, tuple(inner), value=value), [src], [node.output[0]], [rank],
           [perm], op="Pad")


def reduce_mean(b, node, attrs):
    src = node.input[0]
    rank = b.rank(src)
    keep = int(attrs.get("keepdims", 1))
    axes = attrs.get("axes") if b.opset < 18 else b.optional_const(node, 1, "ReduceMean axes")
    if axes is None or len(axes) == 0:
        if int(attrs.get("noop_with_empty_axes", 0)):
            b.alias(node.output[0], src, b.perm(src))
            return
        axes = list(range(rank))
    axes = sorted({int(a) % rank for a in axes})
    perm = b.perm(src) or tuple(range(rank))
    inner = tuple(perm.index(a) for a in axes)
    if keep:
        out_perm = perm
    else:  # the axes left, renumbered in ONNX's order
        left = [p for p in perm if p not in axes]
        order = sorted(left)
        out_perm = tuple(order.index(p) for p in left)
    b.emit(lambda t: F.mean(t, axis=inner, keepdims=bool(keep)), [src], [node.output[0]],
           [rank if keep else rank - len(axes)], [out_perm], op="ReduceMean")


def slice_(b, node, attrs):
    src = node.input[0]
    rank = b.rank(src)
    if b.opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes"), None
    else:
        starts = b.const(node.input[1], "Slice starts")
        ends = b.const(node.input[2], "Slice ends")
        axes = b.optional_const(node, 3, "Slice axes")
        steps = b.optional_const(node, 4, "Slice steps")
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    index = [slice(None)] * rank
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a] = slice(int(s), int(e), st)
    if b.is_const(src):
        b.consts[node.output[0]] = b.consts[src][tuple(index)]
        return
    perm = b.perm(src)
    inner = tuple(index if perm is None else [index[p] for p in perm])
    b.emit(lambda t: t[inner], [src], [node.output[0]], [rank], [perm], op="Slice")


def constant(b, node, attrs):
    from cnnlab.onnx._deps import numpy_helper

    if "value" in attrs:
        value = numpy_helper().to_array(attrs["value"])
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], np.int64)
    else:
        raise Unsupported(f"Constant with {sorted(attrs)}")
    b.consts[node.output[0]] = value


def constant_of_shape(b, node, attrs):
    from cnnlab.onnx._deps import numpy_helper

    shape = [int(v) for v in b.const(node.input[0], "ConstantOfShape shape")]
    value = attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else numpy_helper().to_array(value)
    b.consts[node.output[0]] = np.full(shape, fill.reshape(-1)[0], fill.dtype)


def unsqueeze(b, node, attrs):
    src = node.input[0]
    axes = attrs.get("axes") if b.opset < 13 else b.const(node.input[1], "Unsqueeze axes")
    rank = (b.rank(src) or 0) + len(axes)
    axes = sorted(int(a) % rank for a in axes)
    if b.is_const(src):
        b.consts[node.output[0]] = np.expand_dims(b.consts[src], tuple(axes))
        return

    def run(t):
        shape = list(t.shape)
        for a in axes:
            shape.insert(a, 1)
        return F.reshape(t, tuple(shape))

    b.emit(run, [b.need(src)], [node.output[0]], [rank], op="Unsqueeze")


def sum_(b, node, attrs):
    """Sum of n inputs (ResNet-50 of the ONNX model zoo adds its shortcut with Sum)."""
    names = list(node.input)
    if len(names) == 1:
        return identity(b, node, attrs)
    if any(b.is_const(n) for n in names):
        raise Unsupported("Sum with a constant input")
    ranks = {b.rank(n) for n in names}
    perms = {b.perm(n) for n in names}
    perm = perms.pop() if len(perms) == 1 and len(ranks) == 1 else None

    def run(*ts):
        total = ts[0]
        for t in ts[1:]:
            total = total + t
        return total

    b.emit(run, [b.need(n, perm) for n in names], [node.output[0]], [max(ranks)], [perm],
           op="Sum")


CONVERTERS = {
    "ConstantOfShape": constant_of_shape,
    "Unsqueeze": unsqueeze,
    "Sum": sum_,
    "Relu": activation("Relu"),
    "LeakyRelu": activation("LeakyRelu"),
    "Sigmoid": activation("Sigmoid"),
    "Tanh": activation("Tanh"),
    "Softmax": softmax("Softmax"),
    "LogSoftmax": softmax("LogSoftmax"),
    "Gemm": gemm,
    "MatMul": matmul,
    "Add": binary("Add"),
    "Sub": binary("Sub"),
    "Mul": binary("Mul"),
    "Div": binary("Div"),
    "Clip": clip,
    "Dropout": dropout,
    "Identity": identity,
    "Concat": concat,
    "Flatten": flatten,
    "Reshape": reshape,
    "Transpose": transpose,
    "Pad": pad,
    "ReduceMean": reduce_mean,
    "Slice": slice_,
    "Constant": constant,
}
