"""Module: the base class of every layer and network.

A Module owns :class:`~cnnlab.nn.Parameter` objects and other Modules as ordinary attributes
(``self.weight = Parameter(...)``, ``self.block = Sequential(...)``), also inside lists, tuples
and dicts. They are found automatically, in the order the attributes were first assigned, and
named with dots: ``features.0.weight``. Non-trainable state that belongs in a checkpoint (the
running mean and variance of batch normalization) is an ndarray registered with
:meth:`Module.register_buffer`.

>>> import numpy as np
>>> from cnnlab import nn
>>> class Net(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.features = nn.Sequential(nn.Conv2D(1, 4, 3, seed=0), nn.ReLU())
...         self.head = nn.Dense(4, 2, seed=0)
...     def forward(self, x):
...         return self.head(self.features(x).mean(axis=(1, 2)))
>>> [name for name, _ in Net().named_parameters()]
['features.0.weight', 'features.0.bias', 'head.weight', 'head.bias']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from cnnlab._validate import name_matches
from cnnlab.nn.parameter import Parameter
from cnnlab.tensor import Tensor

__all__ = ["Module", "LoadResult"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class LoadResult(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (both empty after a strict load)."""

    missing: list
    unexpected: list


def _walk(name: str, value) -> Iterator[tuple[str, object]]:
    """(dotted name, item) for a Parameter or Module, or each one inside a list/tuple/dict."""
    if isinstance(value, (Parameter, Module)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(f"{name}.{key}", item)


class Module:
    """Base class of layers and networks: subclass it and write ``forward``.

    Calling a module calls ``forward``. Attributes:

    * ``training``: True after :meth:`train` (the default), False after :meth:`eval`; dropout
      and batch normalization read it.

    Parameters, sub-modules and buffers are discovered from the attributes (see the module
    docstring), so a subclass never lists them by hand.
    """

    training = True

    def __init__(self):
        self.training = True
        self._buffer_names = []

    # ----------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: forward() is not written")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----------------------------------------------------------------- discovery
    def _items(self) -> Iterator[tuple[str, object]]:
        """(name, Parameter or Module) directly owned, in definition order.

        Containers that keep their layers in a list override this to name them 0, 1, 2, ...
        """
        for key, value in vars(self).items():
            yield from _walk(key, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct sub-module, in definition order (no duplicates)."""
        seen = set()
        for name, item in self._items():
            if isinstance(item, Module) and id(item) not in seen:
                seen.add(id(item))
                yield name, item

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (name ``prefix``, '' at the top) and all below."""
        seen = set()

        def visit(name, module):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield name, module
            for child_name, child in module.named_children():
                yield from visit(f"{name}.{child_name}" if name else child_name, child)

        yield from visit(prefix, self)

    def modules(self) -> Iterator[Module]:
        """This module and every module below it."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in definition order (a module's attributes in the order they
        were first assigned, sub-modules expanded in place); a shared parameter appears once."""
        seen, visited = set(), set()

        def visit(prefix, module):
            if id(module) in visited:
                return
            visited.add(id(module))
            for name, item in module._items():
                full = f"{prefix}.{name}" if prefix else name
                if isinstance(item, Parameter):
                    if id(item) not in seen:
                        seen.add(id(item))
                        yield full, item
                elif recurse:
                    yield from visit(full, item)

        yield from visit("", self)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (what an optimizer updates), in definition order."""
        for _, p in self.named_parameters(recurse):
            yield p

    # ----------------------------------------------------------------- buffers
    def register_buffer(self, name: str, array) -> None:
        """Keep ``array`` (an ndarray, not trained) as ``self.<name>`` and in the state_dict."""
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(
                f"register_buffer: name must be a Python identifier; received {name!r}"
            )
        existing = vars(self).get(name)
        names = vars(self).setdefault("_buffer_names", [])
        if isinstance(existing, (Parameter, Module)):
            raise ValueError(
                f"register_buffer: {name!r} is already a {type(existing).__name__} of "
                f"{type(self).__name__}"
            )
        setattr(self, name, np.array(array, copy=True))
        if name not in names:
            names.append(name)

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """(dotted name, ndarray) for every registered buffer of this module and below."""
        for module_name, module in self.named_modules():
            for name in vars(module).get("_buffer_names", ()):
                yield (f"{module_name}.{name}" if module_name else name), getattr(module, name)

    def buffers(self) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers():
            yield b

    def named_rngs(self) -> Iterator[tuple[str, np.random.Generator]]:
        """(dotted module name, Generator) for every module that keeps one as ``self.rng``.

        Dropout draws its masks from its own Generator; a checkpoint that wants a resumed run to
        repeat the same masks saves ``rng.bit_generator.state`` of each of these.
        """
        for name, module in self.named_modules():
            rng = vars(module).get("rng")
            if isinstance(rng, np.random.Generator):
                yield name, rng

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every module below it; returns self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Same as ``train(False)``: dropout off, batch norm uses its running statistics."""
        return self.train(False)

    # ----------------------------------------------------------------- gradients
    def zero_grad(self) -> None:
        """Forget the gradients of every parameter (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def _select(self, prefix: str, method: str) -> list:
        if not isinstance(prefix, str):
            raise TypeError(f"{method}: prefix must be a str; received {type(prefix).__name__}")
        chosen = [(n, p) for n, p in self.named_parameters() if name_matches(n, prefix)]
        if not chosen:
            names = [n for n, _ in self.named_parameters()]
            raise ValueError(
                f"{method}: no parameter name starts with {prefix!r}; "
                f"the parameters are {names}"
            )
        return chosen

    def freeze(self, prefix: str = "", *, freeze_bn_stats: bool = True) -> list:
        """Stop training the parameters named ``prefix`` or below it (all when prefix is '').

        ``freeze("features")`` covers ``features.0.weight`` but not ``features_extra.w``. The
        frozen parameters get ``requires_grad = False`` and their ``.grad`` cleared, so backward
        leaves them alone and optimizers skip them. With ``freeze_bn_stats`` (the default) a
        batch norm whose parameters are now all frozen also stops updating its running
        statistics (:mod:`cnnlab.nn.freezing`), so the frozen part computes the same function
        while the rest trains. Returns the names affected; raises ValueError when no parameter
        matches (a misspelt prefix should not pass silently).
        """
        chosen = self._select(prefix, "freeze")
        for _, p in chosen:
            p.requires_grad = False
            p.grad = None
        if freeze_bn_stats:
            from cnnlab.nn.freezing import freeze_bn_stats as _freeze_stats

            _freeze_stats(self)
        return [n for n, _ in chosen]

    def unfreeze(self, prefix: str = "") -> list:
        """Train again the parameters named ``prefix`` or below it (batch norms with a trainable
        parameter update their statistics again); returns the names affected."""
        from cnnlab.nn.freezing import thaw_bn_stats

        chosen = self._select(prefix, "unfreeze")
        for _, p in chosen:
            p.requires_grad = True
        thaw_bn_stats(self)
        return [n for n, _ in chosen]

    # ----------------------------------------------------------------- dtype
    def astype(self, dtype) -> Module:
        """Convert every parameter and buffer to ``dtype`` (float32 or float64), in place.

        The Parameter objects stay the same (an optimizer holding them keeps working); returns
        self. ``double()`` and ``float()`` are the two shortcuts.
        """
        dtype = np.dtype(dtype)
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"astype: a module holds float32 or float64 values; received dtype {dtype}"
            )
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            if p.grad is not None:
                p.grad = p.grad.astype(dtype)
        for module in self.modules():
            for name in vars(module).get("_buffer_names", ()):
                setattr(module, name, getattr(module, name).astype(dtype))
        return self

    def double(self) -> Module:
        """Convert to float64 (for gradient checks); returns self."""
        return self.astype(np.float64)

    def float(self) -> Module:
        """Convert to float32 (the default); returns self."""
        return self.astype(np.float32)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict:
        """Ordered dict: dotted name -> ndarray copy, parameters first then buffers."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = np.array(b, copy=True)
        return state

    def load_state_dict(self, state, strict: bool = True) -> LoadResult:
        """Copy values from ``state`` (name -> array) into the parameters and buffers.

        Every name and shape is checked before anything changes, so a failed load leaves the
        module as it was. With ``strict`` (the default), names in the module but not in
        ``state`` (missing) or in ``state`` but not in the module (unexpected) are an error;
        otherwise they are returned. A shape mismatch is always an error. Values are converted
        to each parameter's dtype.
        """
        if not hasattr(state, "keys"):
            raise TypeError(
                f"load_state_dict: expected a mapping name -> array; received "
                f"{type(state).__name__}"
            )
        targets = OrderedDict()  # name -> (kind, owner or parameter, attribute)
        for name, p in self.named_parameters():
            targets[name] = ("parameter", p, None)
        for module_name, module in self.named_modules():
            for attr in vars(module).get("_buffer_names", ()):
                name = f"{module_name}.{attr}" if module_name else attr
                targets[name] = ("buffer", module, attr)

        missing = [n for n in targets if n not in state]
        unexpected = [n for n in state if n not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing {missing} (in the model, not in the state dict)")
            if unexpected:
                parts.append(f"unexpected {unexpected} (in the state dict, not in the model)")
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))

        staged = []
        for name, (kind, obj, attr) in targets.items():
            if name not in state:
                continue
            value = state[name]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            current = obj.data if kind == "parameter" else getattr(obj, attr)
            if value.shape != current.shape:
                raise ValueError(
                    f"load_state_dict for {type(self).__name__}: {kind} {name!r} has shape "
                    f"{current.shape} in the model but {value.shape} in the state dict"
                )
            if value.dtype.kind not in "fiu":
                raise TypeError(
                    f"load_state_dict for {type(self).__name__}: {kind} {name!r} must be numeric; "
                    f"received dtype {value.dtype}"
                )
            staged.append((kind, obj, attr, np.array(value, dtype=current.dtype, copy=True)))
        for kind, obj, attr, value in staged:
            if kind == "parameter":
                obj.data = value
            else:
                setattr(obj, attr, value)
        return LoadResult(missing, unexpected)

    # ----------------------------------------------------------------- summary hooks
    def _macs(self, in_shape: tuple, out_shape: tuple) -> int:
        """Multiplications for one sample (``nn.summary``); 0 for layers without weights."""
        return 0

    def _window(self, in_shape: tuple):
        """((KH_eff, KW_eff), (SH, SW)) of a windowed layer for the receptive field, or None.

        KH_eff = d (KH - 1) + 1 is the span of a dilated kernel. Layers without a spatial
        window (activations, dense, batch norm) return None: the field passes through them.
        """
        return None

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The settings shown inside ``repr``'s parentheses (those that differ from defaults)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}({extra}"]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)
