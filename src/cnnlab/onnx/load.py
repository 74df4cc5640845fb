"""load: an ONNX file as a trainable cnnlab Module taking channels-last (NHWC) images.

The file is parsed as protobuf data (nothing in it is executed), checked with ONNX's checker,
its shapes inferred, and every node converted to cnnlab layers and functions. Any problem
gives one :class:`~cnnlab.onnx.ONNXError` line naming the file: not ONNX, truncated, external
data, an opset or operators cnnlab does not run (all listed at once), shapes that do not
infer.
"""

from __future__ import annotations

import os

import numpy as np

from cnnlab.onnx import _convert_image, _convert_tensor
from cnnlab.onnx._builder import Builder, Unsupported
from cnnlab.onnx._deps import numpy_helper, onnx
from cnnlab.onnx._layout import NHWC
from cnnlab.onnx.errors import ONNXError
from cnnlab.onnx.graph import ONNXModel

__all__ = ["load", "from_proto", "supported_operators", "MIN_OPSET"]

CONVERTERS = {**_convert_image.CONVERTERS, **_convert_tensor.CONVERTERS}
MIN_OPSET = 7  # the first opset with today's broadcasting Add/Sub/Mul
MAX_FILE_BYTES = 2 << 30  # protobuf's own limit for one message

_FLOATS = {1: np.float32, 11: np.float64}  # TensorProto.FLOAT, DOUBLE


def supported_operators() -> list:
    """The ONNX operators :func:`load` converts."""
    return sorted(CONVERTERS)


def load(path, *, layout: str = "nhwc") -> ONNXModel:
    """Read the ONNX file ``path`` as a cnnlab model (eval mode; ``.train()`` to fine-tune).

    4-D inputs and outputs are images in cnnlab's channels-last order (N, H, W, C), converted
    from ONNX's (N, C, H, W) once, at import; ``layout='onnx'`` keeps ONNX's order instead.

    >>> import cnnlab.onnx  # doctest: +SKIP
    >>> model = cnnlab.onnx.load("resnet18.onnx")  # doctest: +SKIP
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ONNXError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if size > MAX_FILE_BYTES:
        raise ONNXError(f"{path}: {size} bytes is more than an ONNX file can hold (2 GiB)")
    with open(path, "rb") as f:
        data = f.read()
    return from_bytes(data, source=path, layout=layout, base_dir=os.path.dirname(path))


def _external_data(model, source, base_dir) -> None:
    """Read tensors kept in files beside the model (PyTorch's dynamo exporter writes them):
    only relative paths inside the model's folder, read as raw bytes."""
    o = onnx()
    tensors = [t for t in model.graph.initializer if t.data_location == o.TensorProto.EXTERNAL]
    if not tensors:
        return
    if base_dir is None:
        raise ONNXError(f"{source}: tensor {tensors[0].name!r} keeps its data in an external "
                        f"file; give the model as a file path")
    root = os.path.realpath(base_dir or ".")
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        where = os.path.realpath(os.path.join(root, info.get("location", "")))
        if os.path.isabs(info.get("location", "")) or os.path.dirname(where) != root and not (
            where.startswith(root + os.sep)
        ):
            raise ONNXError(f"{source}: tensor {t.name!r} points at {info.get('location')!r}, "
                            f"outside the model's folder")
        if not os.path.isfile(where):
            raise ONNXError(f"{source}: tensor {t.name!r} keeps its data in "
                            f"{info.get('location')!r}, which is missing")
    try:
        o.external_data_helper.load_external_data_for_model(model, root)
    except Exception as e:
        raise ONNXError(f"{source}: cannot read the external data: {_one_line(e)}") from None


def from_bytes(data: bytes, *, source: str, layout: str = "nhwc", base_dir=None) -> ONNXModel:
    o = onnx()
    if not data:
        raise ONNXError(f"{source}: the file is empty, not an ONNX model")
    try:
        model = o.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ONNXError(f"{source}: not an ONNX model or truncated (protobuf: {e})") from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ONNXError(f"{source}: not an ONNX model (no graph or IR version in it)")
    _external_data(model, source, base_dir)
    return from_proto(model, source=source, layout=layout)


def _one_line(e) -> str:
    text = " ".join(str(e).split())
    return text[:400]


def _opset(model, source) -> int:
    versions = {}
    for imp in model.opset_import:
        versions[imp.domain or "ai.onnx"] = imp.version
    used = {n.domain or "ai.onnx" for n in model.graph.node}
    other = sorted(d for d in used if d != "ai.onnx")
    if other:
        raise ONNXError(f"{source}: operators from domain(s) {other} are not supported "
                        f"(cnnlab runs the standard ai.onnx operators)")
    version = versions.get("ai.onnx")
    top = onnx().defs.onnx_opset_version()
    if version is None or not MIN_OPSET <= version <= top:
        raise ONNXError(f"{source}: unsupported opset {version} (cnnlab reads ai.onnx opsets "
                        f"{MIN_OPSET} to {top})")
    return version


def _value_shapes(graph):
    shapes = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                for d in t.shape.dim)
    return shapes


def from_proto(model, *, source: str = "<model>", layout: str = "nhwc") -> ONNXModel:
    """Convert a loaded ``onnx.ModelProto`` (see :func:`load`)."""
    if layout not in ("nhwc", "onnx"):
        raise ValueError(f"cnnlab.onnx.load: layout must be 'nhwc' or 'onnx'; "
                         f"received {layout!r}")
    o = onnx()
    graph = model.graph
    for t in graph.initializer:
        if t.data_location == o.TensorProto.EXTERNAL:
            raise ONNXError(f"{source}: tensor {t.name!r} keeps its data in an external file "
                            f"(load the model from its path)")
    opset = _opset(model, source)
    try:
        o.checker.check_model(model)
    except Exception as e:
        raise ONNXError(f"{source}: not a valid ONNX model: {_one_line(e)}") from None
    try:
        model = o.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                               data_prop=True)
    except Exception as e:
        raise ONNXError(f"{source}: the shapes do not infer: {_one_line(e)}") from None
    graph = model.graph
    unknown = sorted({n.op_type for n in graph.node} - set(CONVERTERS))
    if unknown:
        raise ONNXError(f"{source}: unsupported operator(s) {', '.join(unknown)} (cnnlab runs "
                        f"{', '.join(supported_operators())})")
    b = Builder(opset, layout)
    b.shapes = _value_shapes(graph)
    for node in graph.node:
        for i, name in enumerate(node.input):
            b.consumers.setdefault(name, []).append((node, i))
    b.graph_outputs = {vi.name for vi in graph.output}
    nh = numpy_helper()
    for t in graph.initializer:
        b.consts[t.name] = nh.to_array(t)
    inputs, input_shapes, problems = [], [], []
    for vi in graph.input:
        if vi.name in b.consts:
            continue  # IR < 4 lists initializers among the inputs
        elem = vi.type.tensor_type.elem_type
        if elem not in _FLOATS:
            name = o.TensorProto.DataType.Name(elem) if elem else "not a tensor"
            problems.append(f"input {vi.name!r} is {name} (cnnlab runs float32 and float64)")
            continue
        shape = b.shapes.get(vi.name)
        rank = None if shape is None else len(shape)
        perm = NHWC if layout == "nhwc" and rank == 4 else None
        b.define(vi.name, rank, perm)
        inputs.append(vi.name)
        if shape is None:
            input_shapes.append(None)
        else:
            held = [shape[p] for p in perm] if perm else list(shape)
            held[0:1] = [None] if held else []  # the batch size is free
            input_shapes.append(tuple(held))
    for node in graph.node:
        attrs = {a.name: o.helper.get_attribute_value(a) for a in node.attribute}
        try:
            CONVERTERS[node.op_type](b, node, attrs)
        except Unsupported as e:
            problems.append(f"{node.op_type} node {node.name or node.output[0]!r}: {e}")
            for out in node.output:  # keep going, to report every problem at once
                b.define(out, len(b.shapes.get(out) or ()) or None)
        except (KeyError, ValueError, TypeError, IndexError) as e:
            problems.append(f"{node.op_type} node {node.name or node.output[0]!r}: "
                            f"{_one_line(e)}")
            for out in node.output:
                b.define(out, len(b.shapes.get(out) or ()) or None)
        for out in node.output:  # ranks from shape inference where the converter gave none
            if out and out not in b.consts and b.ranks.get(out) is None and out in b.shapes:
                b.ranks[out] = len(b.shapes[out])
    if problems:
        raise ONNXError(f"{source}: cannot run {len(problems)} part(s) of the graph: "
                        + "; ".join(problems))
    outputs = []
    for vi in graph.output:
        name = vi.name
        if name in b.consts:
            problems.append(f"output {name!r} is a constant")
            continue
        rank = b.ranks.get(name)
        want = NHWC if layout == "nhwc" and rank == 4 else None
        try:
            outputs.append(b.need(name, want))
        except Unsupported as e:
            problems.append(f"output {name!r}: {e}")
    if problems:
        raise ONNXError(f"{source}: " + "; ".join(problems))
    result = ONNXModel(b.steps, b.layers, inputs, input_shapes, outputs, layout,
                       os.path.basename(source))
    from cnnlab import nn

    dense = [n for n, m in b.layers.items() if isinstance(m, nn.Dense)]
    if dense:
        result.head_name = dense[-1]
        result.num_classes = b.layers[dense[-1]].out_features
    result.eval()
    return result
