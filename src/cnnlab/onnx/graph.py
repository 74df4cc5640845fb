"""ONNXModel: an imported ONNX graph as a cnnlab Module (trainable, channels-last).

Each ONNX operator with weights becomes a cnnlab layer (Conv -> :class:`~cnnlab.nn.Conv2D`,
Gemm -> :class:`~cnnlab.nn.Dense`, BatchNormalization -> :class:`~cnnlab.nn.BatchNorm2D`, ...)
stored as an attribute of the model, so ``parameters()``, ``state_dict()``, ``summary``,
freezing and ``replace_head`` see them as in any other model. The forward runs a list of
steps in the graph's order; a step calls a layer (by its attribute name) or a parameter-free
function of :mod:`cnnlab.functional`, on cnnlab tensors, so gradients flow through all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.nn.module import Module
from cnnlab.tensor import as_tensor

__all__ = ["ONNXModel", "Step"]


@dataclass
class Step:
    """One operation: ``outputs = fn(*inputs)``; ``layer`` names the model's attribute to call
    instead of ``fn`` (a layer with parameters or settings that ``summary`` shows)."""

    inputs: tuple
    outputs: tuple
    fn: object = None
    layer: str | None = None
    op: str = ""  # the ONNX operator it comes from (for messages)


class ONNXModel(Module):
    """A Module built by :func:`cnnlab.onnx.load` (see there).

    Attributes:
        input_names, output_names: the graph's.
        input_shapes: per input, the shape it takes (images NHWC), None for a free size.
        input_shape: the first input's shape without the batch axis (for ``nn.summary``),
            when every size is known.
        layout: 'nhwc' (images channels-last, cnnlab's) or 'onnx' (ONNX's own axis order,
            what :mod:`cnnlab.onnx.backend` runs).
    """

    def __init__(self, steps, layers, input_names, input_shapes, output_names, layout, source):
        super().__init__()
        for name, layer in layers.items():
            setattr(self, name, layer)
        self._steps = list(steps)
        self.input_names = tuple(input_names)
        self.input_shapes = tuple(input_shapes)
        self.output_names = tuple(output_names)
        self.layout = layout
        self.source = str(source)
        first = self.input_shapes[0] if self.input_shapes else None
        if first is not None and len(first) > 1 and all(d is not None for d in first[1:]):
            self.input_shape = tuple(first[1:])

    def _items(self):
        for key, value in vars(self).items():
            if isinstance(value, Module):
                yield key, value

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"ONNXModel ({self.source}): the graph takes {len(self.input_names)} input(s) "
                f"{list(self.input_names)}; received {len(inputs)}"
            )
        env = {}
        for name, want, x in zip(self.input_names, self.input_shapes, inputs):
            x = as_tensor(x)
            if want is not None and (
                len(x.shape) != len(want)
                or any(w is not None and w != n for w, n in zip(want, x.shape))
            ):
                shown = "(" + ", ".join("N" if w is None else str(w) for w in want) + ")"
                nhwc = self.layout == "nhwc" and len(want) == 4
                raise ValueError(
                    f"ONNXModel ({self.source}): input {name!r} must have shape {shown}"
                    f"{' (images channels-last, NHWC)' if nhwc else ''}; received "
                    f"{tuple(x.shape)}"
                )
            env[name] = x
        for step in self._steps:
            fn = getattr(self, step.layer) if step.layer else step.fn
            args = [None if n == "" else env[n] for n in step.inputs]
            out = fn(*args)
            if len(step.outputs) == 1:
                env[step.outputs[0]] = out
            else:
                for n, o in zip(step.outputs, out):
                    env[n] = o
        outs = tuple(env[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def extra_repr(self):
        return f"source={self.source!r}, layout={self.layout!r}"
