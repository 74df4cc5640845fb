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
from cnnlab.onnx._deps import onnx
from cnnlab.onnx._export_ops import CONVERTERS, DTYPES, WITH_OUTPUT, Graph, NoForm
from cnnlab.onnx._layout import NCHW
from cnnlab.onnx.errors import ONNXError
from cnnlab.tensor import no_grad, record_ops

__all__ = ["export", "OPSET"]

OPSET = 17


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
    g = Graph(names)
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
            if kind in WITH_OUTPUT:
                name, tag = WITH_OUTPUT[kind](g, fn, settings, ins, out)
            elif kind in CONVERTERS:
                name, tag = CONVERTERS[kind](g, fn, settings, ins)
            else:
                raise NoForm(kind)
        except NoForm as e:
            missing.append(str(e))
            continue
        g.names[id(out)], g.tags[name] = name, tag
        g.keep.append(out)
    if missing:
        raise ONNXError(f"export: {type(model).__name__} uses op(s) with no ONNX form: "
                        f"{', '.join(sorted(set(missing)))}")
    out_infos = []
    elem = DTYPES[np.dtype(dtype)]
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
