"""Containers: Sequential, ModuleList, Residual (block + shortcut) and Concat (Inception)."""

from __future__ import annotations

import numbers
from collections import OrderedDict

import cnnlab
from cnnlab.nn.module import Module

__all__ = ["Sequential", "ModuleList", "Residual", "Concat"]


def _check_module(value, where: str, position) -> Module:
    if not isinstance(value, Module):
        raise TypeError(
            f"{where}: item {position!r} must be a Module (a layer); received "
            f"{type(value).__name__}"
        )
    return value


class ModuleList(Module):
    """A list of modules whose parameters are found (named 0, 1, 2, ...); no forward.

    >>> from cnnlab import nn
    >>> blocks = ModuleList([nn.Dense(4, 4, seed=0) for _ in range(3)])
    >>> [name for name, _ in blocks.named_parameters()][:2]
    ['0.weight', '0.bias']
    """

    def __init__(self, modules=()):
        super().__init__()
        self._list = []
        for m in modules:
            self.append(m)

    def _items(self):
        for i, m in enumerate(self._list):
            yield str(i), m

    def append(self, module: Module) -> ModuleList:
        self._list.append(_check_module(module, type(self).__name__, len(self._list)))
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(self._list[index])
        return self._list[index]

    def __setitem__(self, index, module):
        self._list[index] = _check_module(module, type(self).__name__, index)

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)


class Sequential(Module):
    """Layers applied one after the other: y = layer_k(... layer_1(layer_0(x))).

    ``Sequential(a, b, c)`` names the layers 0, 1, 2; ``Sequential(OrderedDict(conv1=...,
    relu1=...))`` uses the given names. Indexing (``seq[0]``, ``seq[-1]``, ``seq["conv1"]``,
    slices), ``len``, iteration and ``append`` work as on a list.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import nn
    >>> net = Sequential(nn.Conv2D(1, 6, 5, seed=0), nn.ReLU(), nn.MaxPool2D(2))
    >>> net(cl.tensor(np.zeros((1, 28, 28, 1), np.float32))).shape
    (1, 12, 12, 6)
    """

    def __init__(self, *layers):
        super().__init__()
        self._layers = OrderedDict()
        if len(layers) == 1 and isinstance(layers[0], dict):
            for name, layer in layers[0].items():
                if not isinstance(name, str) or not name or "." in name:
                    raise ValueError(
                        f"Sequential: layer names must be non-empty strings without dots; "
                        f"received {name!r}"
                    )
                self._layers[name] = _check_module(layer, "Sequential", name)
        else:
            for layer in layers:
                self.append(layer)

    def _items(self):
        yield from self._layers.items()

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end (named by its position); returns self."""
        name = str(len(self._layers))
        if name in self._layers:
            raise ValueError(f"Sequential: a layer is already named {name!r}")
        self._layers[name] = _check_module(layer, "Sequential", len(self._layers))
        return self

    def __getitem__(self, index):
        if isinstance(index, str):
            if index not in self._layers:
                raise KeyError(f"Sequential: no layer named {index!r}; the names are "
                               f"{list(self._layers)}")
            return self._layers[index]
        items = list(self._layers.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        if not isinstance(index, numbers.Integral):
            raise TypeError(f"Sequential: index must be an int, a slice or a name; "
                            f"received {index!r}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"Sequential: index {index} is out of range for "
                             f"{len(items)} layers")
        return items[index][1]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers.values())

    def forward(self, x):
        for layer in self._layers.values():
            x = layer(x)
        return x


class Residual(Module):
    """A residual (skip) connection: y = block(x) + shortcut(x).

    ``shortcut`` is None for the identity (block must keep the shape), or a module that maps x
    to block's output shape (a 1x1 Conv2D with stride, as in ResNet's projection shortcut). No
    activation follows the addition: compose it, e.g. ``Sequential(Residual(...), ReLU())``.
    Backward: the gradient of y reaches x along both paths and the two are added.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import nn
    >>> block = nn.Sequential(nn.Conv2D(8, 8, 3, padding="same", seed=0), nn.ReLU())
    >>> Residual(block)(cl.tensor(np.zeros((1, 6, 6, 8), np.float32))).shape
    (1, 6, 6, 8)
    """

    def __init__(self, block: Module, shortcut: Module | None = None):
        super().__init__()
        self.block = _check_module(block, "Residual", "block")
        self.shortcut = None if shortcut is None else _check_module(
            shortcut, "Residual", "shortcut"
        )

    def forward(self, x):
        y = self.block(x)
        s = x if self.shortcut is None else self.shortcut(x)
        if tuple(y.shape) != tuple(s.shape):
            what = "the input (identity shortcut)" if self.shortcut is None else "the shortcut"
            raise ValueError(
                f"Residual: the block's output has shape {tuple(y.shape)} but {what} has "
                f"shape {tuple(s.shape)}; they must match to be added (give a shortcut such as "
                f"a 1x1 Conv2D with the block's stride and channels)"
            )
        return y + s


class Concat(Module):
    """Parallel branches on the same input, joined along ``axis`` (channels by default).

    y = concat([branch_0(x), branch_1(x), ...], axis): an Inception module. Every branch must
    give the same shape except on ``axis`` (use 'same' padding and stride 1 in the branches).
    Branches are named 0, 1, 2, ...

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import nn
    >>> inception = Concat(nn.Conv2D(192, 64, 1, seed=0),
    ...                    nn.Conv2D(192, 32, 5, padding="same", seed=0),
    ...                    nn.MaxPool2D(3, stride=1, padding="same"))
    >>> inception(cl.tensor(np.zeros((1, 28, 28, 192), np.float32))).shape
    (1, 28, 28, 288)
    """

    def __init__(self, *branches, axis=-1):
        super().__init__()
        if not branches:
            raise ValueError("Concat: needs at least one branch; received none")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Concat: axis must be an int; received {axis!r}")
        self._branches = [_check_module(b, "Concat", i) for i, b in enumerate(branches)]
        self.axis = int(axis)

    def _items(self):
        for i, b in enumerate(self._branches):
            yield str(i), b

    def __getitem__(self, index):
        return self._branches[index]

    def __len__(self):
        return len(self._branches)

    def __iter__(self):
        return iter(self._branches)

    def forward(self, x):
        outs = [branch(x) for branch in self._branches]
        ndim = len(outs[0].shape)
        axis = self.axis % ndim if -ndim <= self.axis < ndim else None
        shapes = [tuple(o.shape) for o in outs]
        if axis is None or any(len(s) != ndim for s in shapes) or len(
            {s[:axis] + s[axis + 1:] for s in shapes}
        ) != 1:
            raise ValueError(
                f"Concat: the branches' outputs must have the same shape except on axis "
                f"{self.axis}; received {shapes} (use padding='same' and stride 1 in the "
                f"branches, or give every branch the same stride)"
            )
        return cnnlab.concat(outs, axis=axis)

    def extra_repr(self):
        return "" if self.axis == -1 else f"axis={self.axis}"
