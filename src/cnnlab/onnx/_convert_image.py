"""Converters for the image operators: Conv, pooling, BatchNormalization, LRN (private).

Each takes (builder, node, attrs) and emits steps on channels-last images: the input is asked
for with perm NHWC, the output is declared NHWC. Weights in ONNX's OIHW become cnnlab's HWIO
here, once.
"""

from __future__ import annotations

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.nn.parameter import Parameter
from cnnlab.onnx._builder import Unsupported
from cnnlab.onnx._layers import LRN, Pool2D
from cnnlab.onnx._layout import NHWC

__all__ = ["CONVERTERS"]


def _image(b, name, op):
    if b.rank(name) != 4:
        raise Unsupported(f"{op} on a {b.rank(name)}-D input (cnnlab runs 2-D images, 4-D "
                          f"N, C, H, W)")
    return b.need(name, NHWC)


def _auto_pad(attrs):
    value = attrs.get("auto_pad", b"NOTSET")
    return value.decode() if isinstance(value, bytes) else str(value)


def _pads(attrs, op):
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        raise Unsupported(f"{op} pads {pads} (4 numbers for 2-D)")
    return (pads[0], pads[2]), (pads[1], pads[3])


def _dilations(attrs, op):
    d = tuple(attrs.get("dilations", [1, 1]))
    if len(d) != 2:
        raise Unsupported(f"{op} dilations {list(d)}")
    return d


# ---------------------------------------------------------------------- Conv
def _same_lower(x, kernel, stride, dilation):
    """x padded so that a 'valid' convolution gives ceil(H / s) rows, the odd row on top."""
    widths = [(0, 0)]
    for n, k, s, d in zip(x.shape[1:3], kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        widths.append((total - total // 2, total // 2))
    return cnnlab.pad(x, (*widths, (0, 0)))


def conv(b, node, attrs):
    x = _image(b, node.input[0], "Conv")
    wname = node.input[1]
    groups = int(attrs.get("group", 1))
    stride = tuple(attrs.get("strides", [1, 1]))
    dilation = _dilations(attrs, "Conv")
    mode = _auto_pad(attrs)
    (pt, pb), (pl, pr) = _pads(attrs, "Conv")
    padding = 0
    if mode == "SAME_UPPER":
        padding = "same"  # cnnlab's 'same' puts the odd row after, as SAME_UPPER does
    elif mode == "SAME_LOWER":  # the odd row before: pad by the input's size, then 'valid'
        padded = b.fresh(node.output[0])
        w_shape = b.shape(wname)
        if w_shape is None or len(w_shape) != 4:
            raise Unsupported("Conv auto_pad SAME_LOWER with a weight of unknown shape")
        kernel = w_shape[2:]
        b.emit(lambda t: _same_lower(t, kernel, stride, dilation), [x], [padded], [4], [NHWC],
               op="Conv")
        x = padded
    elif mode in ("NOTSET", "") and (pt, pl) == (pb, pr):
        padding = (pt, pl)
    elif mode in ("NOTSET", ""):
        padded = b.fresh(node.output[0])
        widths = ((0, 0), (pt, pb), (pl, pr), (0, 0))
        b.emit(lambda t, w=widths: cnnlab.pad(t, w), [x], [padded], [4], [NHWC], op="Conv")
        x = padded
    has_bias = len(node.input) > 2 and node.input[2] != ""
    if b.is_const(wname) and (not has_bias or b.is_const(node.input[2])):
        w = b.const(wname)  # (C_out, C_in/g, KH, KW)
        if w.ndim != 4:
            raise Unsupported(f"Conv with a {w.ndim}-D weight (2-D convolutions only)")
        c_out, cg, kh, kw = w.shape
        layer = nn.Conv2D(cg * groups, c_out, (kh, kw), stride=stride, padding=padding,
                          dilation=dilation, groups=groups, bias=has_bias, init="zeros",
                          dtype=w.dtype)
        layer.weight = Parameter(np.ascontiguousarray(w.transpose(2, 3, 1, 0)), regularize=True)
        if has_bias:
            bias = b.const(node.input[2]).astype(w.dtype)
            layer.bias = Parameter(np.ascontiguousarray(bias), regularize=False)
        b.emit(None, [x], [node.output[0]], [4], [NHWC], layer=layer,
               hint=b.hint(node, wname), op="Conv")
        return

    def run(t, w, bias=None):  # weights given at run time (ONNX's node tests)
        w = F.transpose(w, (2, 3, 1, 0))  # OIHW -> HWIO
        return F.conv2d(t, w, bias, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)

    ins = [x, b.need(wname)] + ([b.need(node.input[2])] if has_bias else [])
    b.emit(run, ins, [node.output[0]], [4], [NHWC], op="Conv")


# ---------------------------------------------------------------------- pooling
def _pool(kind):
    def convert(b, node, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported(f"{kind} with the Indices output")
        if b.rank(node.input[0]) != 4:
            raise Unsupported(f"{kind} on a {b.rank(node.input[0])}-D input (2-D pooling only)")
        x = b.need(node.input[0], NHWC)
        size = tuple(attrs["kernel_shape"])
        stride = tuple(attrs.get("strides", [1, 1]))
        if _dilations(attrs, kind) != (1, 1):
            raise Unsupported(f"{kind} with dilations")
        mode = _auto_pad(attrs)
        pads = _pads(attrs, kind)
        ceil = bool(attrs.get("ceil_mode", 0))
        include = bool(attrs.get("count_include_pad", 0))
        p = int(attrs.get("p", 2))
        (pt, pb), (pl, pr) = pads
        simple = (mode in ("NOTSET", "", "VALID") and not ceil and pt == pb and pl == pr
                  and pt <= size[0] // 2 and pl <= size[1] // 2)
        if mode == "VALID":
            pt = pl = 0
        layer = None
        if simple and kind == "MaxPool":
            layer = nn.MaxPool2D(size, stride=stride, padding=(pt, pl))
        elif simple and kind == "AveragePool" and (not include or pt == pl == 0):
            layer = nn.AvgPool2D(size, stride=stride, padding=(pt, pl))
        elif simple and kind == "LpPool" and pt == pl == 0 and p % 2 == 0 and p >= 1:
            layer = nn.LPPool2D(p, size, stride=stride)
        if layer is None:
            if kind == "LpPool" and p < 1:
                raise Unsupported(f"LpPool with p={p}")
            layer = Pool2D(kind, size, stride, pads, mode, ceil, include, p)
        b.emit(None, [x], [node.output[0]], [4], [NHWC], layer=layer,
               hint=b.hint(node), op=kind)

    return convert


def global_pool(kind):
    def convert(b, node, attrs):
        x = _image(b, node.input[0], kind)
        if kind == "GlobalAveragePool":
            layer = nn.GlobalAvgPool2D()
            pooled = b.fresh(node.output[0])
            b.emit(None, [x], [pooled], [2], layer=layer, hint=b.hint(node),
                   op=kind)
            b.emit(lambda t: F.reshape(t, (t.shape[0], 1, 1, t.shape[1])), [pooled],
                   [node.output[0]], [4], [NHWC], op=kind)
            return
        b.emit(lambda t: F.max(t, axis=(1, 2), keepdims=True), [x], [node.output[0]], [4],
               [NHWC], op=kind)

    return convert


# ---------------------------------------------------------------------- normalization
def batch_norm(b, node, attrs):
    if attrs.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
        raise Unsupported("BatchNormalization in training mode (running statistics outputs)")
    rank = b.rank(node.input[0])
    if rank not in (2, 4):
        raise Unsupported(f"BatchNormalization on a {rank}-D input (2-D or 4-D only)")
    x = b.need(node.input[0], NHWC if rank == 4 else None)
    eps = float(attrs.get("epsilon", 1e-5))
    momentum = float(attrs.get("momentum", 0.9))
    names = node.input[1:5]
    if all(b.is_const(n) for n in names):
        gamma, beta, mean, var = (b.const(n) for n in names)
        c = gamma.shape[0]
        cls = nn.BatchNorm2D if rank == 4 else nn.BatchNorm1D
        layer = cls(c, momentum=momentum, eps=eps, dtype=gamma.dtype)
        layer.gamma = Parameter(np.ascontiguousarray(gamma), regularize=False)
        layer.beta = Parameter(np.ascontiguousarray(beta.astype(gamma.dtype)), regularize=False)
        layer.running_mean[...] = mean
        layer.running_var[...] = var
        hint = b.hint(node, names[0])
        b.emit(None, [x], [node.output[0]], [rank], [NHWC if rank == 4 else None], layer=layer,
               hint=hint, op="BatchNormalization")
        return
    def run(t, gamma, beta, mean, var):  # statistics given at run time (ONNX's node tests)
        return F.batch_norm(t, gamma, beta, mean.data, var.data, training=False, eps=eps)

    ins = [x] + [b.need(n) if not b.is_const(n) else _const_value(b, n) for n in names]
    b.emit(run, ins, [node.output[0]], [rank], [NHWC if rank == 4 else None],
           op="BatchNormalization")


def _const_value(b, name):
    """A runtime value holding a constant (for operators given some inputs as constants)."""
    out = b.fresh(name)
    value = cnnlab.tensor(b.consts[name])
    b.emit(lambda: value, [], [out], [b.consts[name].ndim], op="Constant")
    return out


def lrn(b, node, attrs):
    x = _image(b, node.input[0], "LRN")
    layer = LRN(int(attrs["size"]), float(attrs.get("alpha", 1e-4)),
                float(attrs.get("beta", 0.75)), float(attrs.get("bias", 1.0)))
    b.emit(None, [x], [node.output[0]], [4], [NHWC], layer=layer, hint=b.hint(node),
           op="LRN")


CONVERTERS = {
    "Conv": conv,
    "MaxPool": _pool("MaxPool"),
    "AveragePool": _pool("AveragePool"),
    "LpPool": _pool("LpPool"),
    "GlobalAveragePool": global_pool("GlobalAveragePool"),
    "GlobalMaxPool": global_pool("GlobalMaxPool"),
    "BatchNormalization": batch_norm,
    "LRN": lrn,
}
