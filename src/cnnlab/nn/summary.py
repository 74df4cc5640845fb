"""nn.summary: a per-layer table of output shapes, parameters, multiplications and receptive field.

The model runs once, in eval mode and under ``no_grad``, on zeros of shape (1, *input_shape);
its modes are restored afterwards and nothing in it changes. Every leaf layer (and any module
that owns parameters directly) gives one row per call:

* output shape, without the batch axis;
* trainable and frozen parameters owned by the layer (counted at its first call only);
* MACs, multiplications for one sample: Conv2D OH*OW*C_out*KH*KW*C_in/groups, Dense
  in*out, 0 for the rest (bias additions are not multiplications);
* receptive field and jump of one output position, in input pixels, along H and W: a window
  of span k = d(KH-1)+1 and stride s maps (r, j) to (r + (k-1) j, j s); starting from (1, 1).
  Layers without a window pass them through; GlobalAvgPool2D's window is the whole map. Where
  paths merge (Residual's addition, Concat) the larger of the branches is taken.

>>> import numpy as np
>>> from cnnlab import nn
>>> s = summary(nn.Conv2D(3, 2, 3, seed=0), (6, 6, 3))
>>> s.rows[0].output_shape, s.total_macs
((4, 4, 2), 864)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from cnnlab.nn.module import Module
from cnnlab.tensor import Tensor, no_grad

__all__ = ["summary", "Summary", "SummaryRow"]


@dataclass
class SummaryRow:
    """One layer call: see the module docstring for what each number means."""

    name: str
    type: str
    output_shape: tuple | None
    trainable_params: int
    frozen_params: int
    macs: int
    receptive_field: tuple  # (along H, along W)
    jump: tuple  # (along H, along W)

    @property
    def params(self) -> int:
        return self.trainable_params + self.frozen_params


@dataclass
class Summary:
    """What :func:`summary` returns; ``str()`` (or ``print``) gives the table."""

    rows: list
    input_shape: tuple
    output_shape: tuple | None
    total_params: int
    trainable_params: int
    frozen_params: int
    total_macs: int
    model_name: str = field(default="")

    def __str__(self) -> str:
        header = ["Layer (type)", "Output shape", "Trainable", "Frozen", "MACs", "RF", "Jump"]
        body = [
            [
                f"{r.name} ({r.type})",
                _shape_text(r.output_shape),
                f"{r.trainable_params:,}",
                f"{r.frozen_params:,}",
                f"{r.macs:,}",
                _pair_text(r.receptive_field),
                _pair_text(r.jump),
            ]
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

        def line(cells):
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join([first, *rest]).rstrip()

        rule = "-" * len(line(header))
        out = [f"Summary of {self.model_name}" if self.model_name else "Summary", rule,
               line(header), rule]
        out += [line(cells) for cells in body]
        out += [
            rule,
            f"Input {_shape_text(self.input_shape)} -> output {_shape_text(self.output_shape)}",
            f"Total params: {self.total_params:,} (trainable {self.trainable_params:,}, "
            f"frozen {self.frozen_params:,})",
            f"Total MACs per sample: {self.total_macs:,}",
            "RF: receptive field, the input pixels (per side) that one output position sees",
            "Jump: input pixels between neighbouring output positions (the strides' product)",
        ]
        return "\n".join(out)

    __repr__ = __str__

    def print(self, file=None) -> None:
        """Print the table (returns None)."""
        print(str(self), file=file)


def _shape_text(shape) -> str:
    if shape is None:
        return "?"
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _pair_text(value) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


def _count(params) -> tuple[int, int]:
    trainable = sum(p.size for p in params if p.requires_grad)
    frozen = sum(p.size for p in params if not p.requires_grad)
    return int(trainable), int(frozen)


def _merge(fields):
    """Element-wise max of several ((rf_h, rf_w), (j_h, j_w))."""
    rf = tuple(max(f[0][i] for f in fields) for i in range(2))
    jump = tuple(max(f[1][i] for f in fields) for i in range(2))
    return rf, jump


class _Tracer:
    """Wraps each module's forward to record rows and carry the receptive field along."""

    def __init__(self, model: Module):
        self.model = model
        self.rows = []
        self.fields = {}  # id(tensor) -> ((rf_h, rf_w), (jump_h, jump_w))
        self.alive = []  # keep traced tensors alive so their ids stay unique
        self.frames = []  # per active call: {"input": field, "produced": [fields]}
        self.seen = set()  # modules whose parameters were already counted

    def field_of(self, x):
        if isinstance(x, Tensor) and id(x) in self.fields:
            return self.fields[id(x)]
        if self.frames:
            frame = self.frames[-1]
            return _merge(frame["produced"]) if frame["produced"] else frame["input"]
        return (1, 1), (1, 1)

    def remember(self, out, fld):
        if isinstance(out, Tensor):
            self.fields[id(out)] = fld
            self.alive.append(out)
        if self.frames:
            self.frames[-1]["produced"].append(fld)

    def hook(self, name: str, module: Module):
        original = module.forward
        has_children = next(module.children(), None) is not None
        own = list(module.parameters(recurse=False))
        is_row = not has_children or bool(own)

        def traced(*args, **kwargs):
            x = args[0] if args else next(iter(kwargs.values()), None)
            in_field = self.field_of(x)
            if isinstance(x, Tensor) and id(x) not in self.fields:
                self.fields[id(x)] = in_field  # siblings given the same tensor start alike
                self.alive.append(x)
            self.frames.append({"input": in_field, "produced": []})
            try:
                out = original(*args, **kwargs)
            finally:
                frame = self.frames.pop()
            if not has_children:
                in_shape = tuple(x.shape) if hasattr(x, "shape") else None
                window = module._window(in_shape) if in_shape is not None else None
                if window is None:
                    out_field = in_field
                else:
                    (rf, jump), (span, stride) = in_field, window
                    out_field = (
                        tuple(r + (k - 1) * j for r, k, j in zip(rf, span, jump)),
                        tuple(j * s for j, s in zip(jump, stride)),
                    )
            elif isinstance(out, Tensor) and id(out) in self.fields:
                out_field = self.fields[id(out)]
            else:
                out_field = _merge(frame["produced"]) if frame["produced"] else in_field
            self.remember(out, out_field)
            if is_row:
                out_shape = tuple(out.shape) if hasattr(out, "shape") else None
                in_shape = tuple(x.shape) if hasattr(x, "shape") else None
                first = id(module) not in self.seen
                self.seen.add(id(module))
                trainable, frozen = _count(own) if first else (0, 0)
                macs = (
                    int(module._macs(in_shape, out_shape))
                    if in_shape is not None and out_shape is not None
                    else 0
                )
                self.rows.append(
                    SummaryRow(
                        name=name or type(module).__name__,
                        type=type(module).__name__,
                        output_shape=None if out_shape is None else out_shape[1:],
                        trainable_params=trainable,
                        frozen_params=frozen,
                        macs=macs,
                        receptive_field=out_field[0],
                        jump=out_field[1],
                    )
                )
            return out

        return traced


def summary(model: Module, input_shape=None, dtype=None) -> Summary:
    """Run ``model`` once on zeros (1, *input_shape) and tabulate it layer by layer.

    Args:
        model: any Module.
        input_shape: the shape of one sample, without the batch axis, e.g. (28, 28, 1);
            None for a model that records its own (``model.input_shape``: the zoo's do).
        dtype: of the zeros; default the dtype of the model's parameters (float32 if none).

    Returns:
        a :class:`Summary`: ``.rows`` (:class:`SummaryRow` each), ``.total_params``,
        ``.trainable_params``, ``.frozen_params``, ``.total_macs``; ``print(s)`` shows the table.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a Module; received {type(model).__name__}")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError(
                f"summary: {type(model).__name__} does not record its input shape; give one "
                "sample's shape, e.g. summary(model, (28, 28, 1))"
            )
    if isinstance(input_shape, numbers.Integral):
        input_shape = (input_shape,)
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        raise ValueError(
            f"summary: input_shape must be a tuple of positive ints (one sample, no batch "
            f"axis); received {input_shape!r}"
        ) from None
    if not input_shape or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in input_shape
    ):
        raise ValueError(
            f"summary: input_shape must be a tuple of positive ints (one sample, no batch "
            f"axis); received {input_shape!r}"
        )
    if dtype is None:
        first = next(model.parameters(), None)
        dtype = np.float32 if first is None else first.dtype

    tracer = _Tracer(model)
    modules = list(model.named_modules())
    modes = [(m, m.training) for _, m in modules]
    x = Tensor(np.zeros((1, *input_shape), dtype=dtype))
    try:
        for name, m in modules:
            m.__dict__["forward"] = tracer.hook(name, m)
        model.eval()
        with no_grad():
            out = model(x)
    finally:
        for _, m in modules:
            m.__dict__.pop("forward", None)
        for m, mode in modes:
            m.training = mode

    trainable, frozen = _count(list(model.parameters()))
    return Summary(
        rows=tracer.rows,
        input_shape=input_shape,
        output_shape=tuple(out.shape[1:]) if hasattr(out, "shape") else None,
        total_params=trainable + frozen,
        trainable_params=trainable,
        frozen_params=frozen,
        total_macs=sum(r.macs for r in tracer.rows),
        model_name=type(model).__name__,
    )
