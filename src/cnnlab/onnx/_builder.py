"""Builder: walks an ONNX graph and collects the steps of an ONNXModel (private).

The builder knows, for each ONNX value name, either its constant (initializers, Constant
nodes, folded shape arithmetic) or the runtime value's rank and layout ``perm`` (see
:mod:`cnnlab.onnx._layout`). Converters (``_convert_*.py``) ask for an input in the layout
they need with :meth:`Builder.need`, which adds one transpose the first time, and emit steps.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np

from cnnlab import functional as F
from cnnlab.onnx import _layout
from cnnlab.onnx.graph import ONNXModel, Step

__all__ = ["Builder", "Unsupported"]


class Unsupported(Exception):
    """A node cnnlab cannot run; the message says which setting (collected, then reported)."""


def _relayout(axes):
    """A step function: transpose by ``axes`` (a reshape when only size-1 axes move)."""

    def fn(x):
        if _layout.trivial(axes, x.shape):
            return F.reshape(x, tuple(x.shape[a] for a in axes))
        return F.transpose(x, axes)

    return fn


def _same(x):
    return x


class Builder:
    def __init__(self, opset: int, layout: str):
        self.opset = opset
        self.layout = layout
        self.consts = {}  # name -> ndarray
        self.perms = {}  # runtime name -> perm or None
        self.ranks = {}  # runtime name -> rank (None when unknown)
        self.shapes = {}  # name -> tuple of int/None from shape inference
        self.steps = []
        self.layers = OrderedDict()
        self._converted = {}  # (name, perm) -> runtime name in that layout
        self.consumers = {}  # name -> [(node, input index)]
        self.graph_outputs = set()
        self.row_order = {}  # flattened image -> the order of its features, see flatten
        self._count = 0
        self._taken = set()

    # ------------------------------------------------------------------ values
    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, name: str, what: str = "input"):
        if name not in self.consts:
            raise Unsupported(f"{what} {name!r} must be a constant (an initializer)")
        return self.consts[name]

    def optional_const(self, node, index: int, what: str, default=None):
        if len(node.input) <= index or node.input[index] == "":
            return default
        return self.const(node.input[index], what)

    def rank(self, name: str):
        if name in self.consts:
            return self.consts[name].ndim
        return self.ranks.get(name)

    def shape(self, name: str):
        if name in self.consts:
            return self.consts[name].shape
        return self.shapes.get(name)

    def perm(self, name: str):
        return self.perms.get(name)

    def define(self, name: str, rank, perm=None) -> None:
        self.ranks[name] = rank
        self.perms[name] = None if perm is None or _layout.identity(perm) else tuple(perm)

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}#{self._count}"

    def need(self, name: str, perm=None) -> str:
        """The runtime value ``name`` held with ``perm`` (None: ONNX's order)."""
        if name in self.consts:
            raise Unsupported(f"input {name!r} is a constant where a runtime value is expected")
        have = self.perms.get(name)
        want = None if perm is None or _layout.identity(perm) else tuple(perm)
        if have == want:
            return name
        if (name, want) in self._converted:
            return self._converted[(name, want)]
        rank = self.ranks.get(name)
        if rank is None:
            raise Unsupported(f"the rank of {name!r} is unknown (shape inference gave none)")
        axes = _layout.between(have, want, rank)
        out = self.fresh(name)
        self.steps.append(Step((name,), (out,), fn=_relayout(axes), op="layout"))
        self.define(out, rank, want)
        self._converted[(name, want)] = out
        return out

    def const_in(self, array: np.ndarray, perm, rank: int) -> np.ndarray:
        """A constant broadcast against a value of ``rank`` held with ``perm``, laid out alike."""
        if perm is None or array.ndim > rank:
            return array
        full = array.reshape((1,) * (rank - array.ndim) + array.shape)
        return np.ascontiguousarray(full.transpose(perm))

    # ------------------------------------------------------------------ steps
    @staticmethod
    def hint(node, weight: str | None = None) -> str:
        """A layer name: the weight's name less its last part ('layer1.0.conv1.weight' ->
        'layer1.0.conv1'), else the node's name less a trailing '/OpType'."""
        if weight and "." in weight and not weight.startswith("onnx::"):
            return weight.rpartition(".")[0]
        name = node.name or node.op_type.lower()
        if name.endswith("/" + node.op_type):
            name = name[: -len(node.op_type) - 1]
        return name

    def layer_name(self, hint: str) -> str:
        base = re.sub(r"[^0-9A-Za-z_]", "_", hint).strip("_") or "layer"
        if base[0].isdigit():
            base = "n" + base
        name, i = base, 1
        reserved = {"training", "input_names", "input_shapes", "output_names", "layout",
                    "source", "input_shape", "head_name", "num_classes"}
        while (name in self._taken or name in reserved or name.startswith("_")
               or hasattr(ONNXModel, name)):  # never shadow a method: 'eval', 'train', ...
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name

    def emit(self, fn, inputs, outputs, ranks, perms=None, *, layer=None, hint="", op=""):
        """Add a step; ``layer`` (a Module) becomes an attribute named after ``hint``."""
        name = None
        if layer is not None:
            name = self.layer_name(hint)
            self.layers[name] = layer
        self.steps.append(Step(tuple(inputs), tuple(outputs), fn=None if name else fn,
                               layer=name, op=op))
        perms = perms if perms is not None else [None] * len(outputs)
        for out, rank, perm in zip(outputs, ranks, perms):
            self.define(out, rank, perm)
        return name

    def alias(self, out: str, src: str, perm) -> None:
        """``out`` is ``src`` seen with another perm (Identity, Transpose): no work at runtime."""
        self.steps.append(Step((src,), (out,), fn=_same, op="alias"))
        self.define(out, self.ranks.get(src), perm)
