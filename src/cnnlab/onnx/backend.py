"""cnnlab as an ONNX backend (``onnx.backend.base.Backend``), for ONNX's conformance tests.

``prepare(model)`` converts the graph with :func:`cnnlab.onnx.load`'s converter in ONNX's own
axis order (``layout='onnx'``: images NCHW in and out; cnnlab still runs its channels-last
ops inside, converting once where a Conv, pooling or batch norm needs it) and returns a
:class:`CnnlabRep` whose ``run(inputs)`` gives the outputs as NumPy arrays. CPU only.

>>> import onnx.backend.test  # doctest: +SKIP
>>> tests = onnx.backend.test.BackendTest(cnnlab.onnx.backend, __name__)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

import numpy as np

import cnnlab
from cnnlab.onnx._deps import numpy_helper, onnx
from cnnlab.onnx.load import from_proto

onnx()  # this module subclasses onnx's Backend: without onnx, an ImportError naming the extra
_base = importlib.import_module("onnx.backend.base")

__all__ = ["CnnlabBackend", "CnnlabRep", "prepare", "run_model", "run_node",
           "supports_device"]


# the input positions that set an operator up rather than carry data
_SETTINGS = {"Reshape": {1}, "Pad": {1, 2, 3}, "ReduceMean": {1}, "Clip": {1, 2},
             "Dropout": {1, 2}, "Slice": {1, 2, 3, 4}}


def _settings_inputs(graph) -> set:
    """Graph inputs used only as settings (a Reshape's shape, Pad's pads, Clip's bounds)."""
    uses = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append(i in _SETTINGS.get(node.op_type, ()))
    return {name for name, flags in uses.items() if all(flags)}


class CnnlabRep(_base.BackendRep):
    """A prepared graph: ``run(inputs)`` -> tuple of NumPy arrays (ONNX's order).

    cnnlab builds its layers from constants, so graph inputs that only set operators up
    (a Reshape's shape, Pad's pads, Clip's bounds, a Dropout's ratio) are folded into the
    graph as constants when their values arrive, once per distinct value.
    """

    def __init__(self, model, source):
        self.model, self.source = model, source
        graph = model.graph
        inits = {t.name for t in graph.initializer}
        self.inputs = [vi for vi in graph.input if vi.name not in inits]
        settings = _settings_inputs(graph)
        self.folded = [i for i, vi in enumerate(self.inputs) if vi.name in settings]
        self._modules = {}
        if not self.folded:
            self._modules[()] = from_proto(model, source=source, layout="onnx")

    def _module(self, arrays):
        key = tuple((arrays[i].dtype.str, arrays[i].shape, arrays[i].tobytes())
                    for i in self.folded)
        if key not in self._modules:
            m = onnx().ModelProto()
            m.CopyFrom(self.model)
            nh = numpy_helper()
            names = {self.inputs[i].name: arrays[i] for i in self.folded}
            kept = [vi for vi in m.graph.input if vi.name not in names]
            del m.graph.input[:]
            m.graph.input.extend(kept)
            m.graph.initializer.extend(nh.from_array(a, n) for n, a in names.items())
            self._modules[key] = from_proto(m, source=self.source, layout="onnx")
        return self._modules[key]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            inputs = [inputs[vi.name] for vi in self.inputs]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        arrays = [np.asarray(x) for x in inputs]
        module = self._module(arrays)
        data = [a for i, a in enumerate(arrays) if i not in self.folded]
        with cnnlab.no_grad():
            out = module(*[cnnlab.tensor(a) for a in data])
        outs = out if isinstance(out, tuple) else (out,)
        return tuple(np.asarray(o.numpy()) for o in outs)


class CnnlabBackend(_base.Backend):
    """The ``onnx.backend.base.Backend`` interface over :func:`cnnlab.onnx.load`."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper() == "CPU"

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs):
        if not cls.supports_device(device):
            raise ValueError(f"cnnlab.onnx.backend: device must be 'CPU'; received {device!r}")
        if isinstance(model, (str, bytes)) and not isinstance(model, bytes):
            model = onnx().load(model)
        elif isinstance(model, bytes):
            model = onnx().load_model_from_string(model)
        return CnnlabRep(model, model.graph.name or "<model>")

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        """Run one node on NumPy inputs (a graph of that node alone)."""
        o = onnx()
        h = o.helper
        arrays = [np.asarray(x) for x in inputs]
        names = [n for n in node.input]
        graph_inputs = [
            h.make_tensor_value_info(n, o.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, arrays) if n
        ]
        elem = o.helper.np_dtype_to_tensor_dtype(arrays[0].dtype)
        graph_outputs = [h.make_tensor_value_info(n, elem, None) for n in node.output if n]
        if outputs_info:
            graph_outputs = [
                h.make_tensor_value_info(n, o.helper.np_dtype_to_tensor_dtype(np.dtype(dt)),
                                         shape)
                for n, (dt, shape) in zip([n for n in node.output if n], outputs_info)
            ]
        opset = kwargs.get("opset_version", o.defs.onnx_opset_version())
        graph = h.make_graph([node], "run_node", graph_inputs, graph_outputs)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
        if not outputs_info:
            model = o.shape_inference.infer_shapes(model)  # the outputs' shapes
        feeds = [a for n, a in zip(names, arrays) if n]
        return cls.prepare(model, device).run(feeds)


prepare = CnnlabBackend.prepare
run_model = CnnlabBackend.run_model
run_node = CnnlabBackend.run_node
supports_device = CnnlabBackend.supports_device
