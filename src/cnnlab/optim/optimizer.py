"""Optimizer: the base class of SGD, RMSprop, Adam and AdamW.

An optimizer holds the parameters it updates in *parameter groups* (as in PyTorch): each group is
a dict ``{"params": [...], "lr": ..., <other settings>}``, so layers can train with their own
learning rate or weight decay. ``step()`` walks every parameter that has a gradient and hands it
to the subclass's ``_update``, a few lines of in-place NumPy. Per-parameter state (velocities,
moment estimates) is created lazily at the first update, in the parameter's dtype.

The state dict is flat, so that it can be saved without pickle (``.npz`` for the arrays plus
JSON for the rest)::

    {
        "optimizer": "Adam",                                  # the class name (a str)
        "groups": [{"params": [0, 1], "lr": 0.001, ...}],     # JSON-able: numbers, bools, ints
        "state": {"0.m": ndarray, "0.v": ndarray, "0.step": ndarray(int64, shape ())},
    }

A parameter is named by its *position*: its index when every group's ``params`` are listed one
after the other. State keys are ``"<position>.<name>"``. Everything except ``"state"`` is
JSON-able; every value of ``"state"`` is an ndarray (``np.savez(**sd["state"])``). A parameter
that has not been updated yet has no entries. ``load_state_dict`` checks ``"optimizer"`` when it
is present, the number of groups and parameters, and every array's shape.
"""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np

from cnnlab.tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``step``, ``state_dict``.

    Subclasses pass ``defaults`` (the settings and their values, ``lr`` among them), declare
    ``state_spec`` (the per-parameter state: name -> ``"array"``, shaped like the parameter, or
    ``"count"``, an integer) and implement ``_validate(group)`` and
    ``_update(p, g, group, state)``.

    Args:
        params: an iterable of Parameters/Tensors, or of dicts ``{"params": [...], **settings}``
            (parameter groups); a setting missing from a group takes the optimizer's value.
        defaults: the optimizer-wide settings.
    """

    state_spec: dict = {}  # noqa: RUF012 - read-only, overridden by subclasses

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}  # Tensor -> {name: ndarray or int}, filled lazily by step()
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params must be an iterable of Tensors or of parameter-group "
                "dicts; received a single Tensor (wrap it in a list)"
            )
        if isinstance(params, dict):
            params = [params]
        params = list(params)
        if not params:
            raise ValueError(f"{self._name}: received an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ----------------------------------------------------------------- groups
    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], **settings}`` (e.g. layers unfrozen for fine-tuning)."""
        if not isinstance(group, dict):
            raise TypeError(
                f"{self._name}: a parameter group must be a dict with a 'params' key; "
                f"received {type(group).__name__}"
            )
        if "params" not in group:
            raise ValueError(f"{self._name}: a parameter group needs a 'params' key")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(
                f"{self._name}: unknown setting(s) {unknown} in a parameter group; "
                f"the settings are {sorted(self.defaults)}"
            )
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        start = sum(len(g["params"]) for g in self.param_groups)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name}: parameters must be Tensors or Parameters; received "
                    f"{type(p).__name__} at position {start + i}"
                )
            if p.dtype.kind != "f":
                raise TypeError(
                    f"{self._name}: parameters must be floating-point; received dtype "
                    f"{p.dtype} at position {start + i}"
                )
            if id(p) in seen:
                raise ValueError(
                    f"{self._name}: a parameter appears more than once (position {start + i})"
                )
            seen.add(id(p))
        settings = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self._validate(settings)
        self.param_groups.append({"params": params, **settings})

    def _validate(self, group: dict) -> None:  # pragma: no cover - abstract
        """Check (and normalise to plain Python numbers) the settings of one group, in place."""
        raise NotImplementedError

    # ----------------------------------------------------------------- the update
    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``) before the next backward pass."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient and ``requires_grad`` (others are skipped)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue
                if p.grad.shape != p.shape:
                    raise ValueError(
                        f"{self._name}.step: a gradient has shape {p.grad.shape} but its "
                        f"parameter has shape {p.shape}"
                    )
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p)
                self._update(p, p.grad, group, state)

    def _init_state(self, p: Tensor) -> dict:
        """The per-parameter state at the first update: zeros in the parameter's dtype."""
        return {
            name: np.zeros_like(p.data) if kind == "array" else 0
            for name, kind in self.state_spec.items()
        }

    def _update(self, p, g, group, state) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- state dict
    def _params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """A flat copy of the optimizer's state (see the module docstring for the format)."""
        groups, position = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            settings = {k: v for k, v in group.items() if k != "params"}
            groups.append({"params": list(range(position, position + n)), **settings})
            position += n
        state = {}
        for i, p in enumerate(self._params()):
            for name, value in self.state.get(p, {}).items():
                state[f"{i}.{name}"] = np.array(value, copy=True)
        return {"optimizer": self._name, "groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore settings and state saved by :meth:`state_dict` (arrays are copied).

        The optimizer must hold the same number of groups and parameters, with the same shapes.
        """
        where = f"{self._name}.load_state_dict"
        saved_name = state_dict.get("optimizer", self._name)
        if saved_name != self._name:
            raise ValueError(f"{where}: the state was saved by {saved_name}, not {self._name}")
        groups = state_dict.get("groups")
        if not isinstance(groups, (list, tuple)):
            raise TypeError(f"{where}: the state has no 'groups' list")
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{where}: the state has {len(groups)} parameter group(s) but the optimizer "
                f"has {len(self.param_groups)}"
            )
        new_settings = []
        for k, (saved, group) in enumerate(zip(groups, self.param_groups)):
            n_saved, n_have = len(saved.get("params", ())), len(group["params"])
            if n_saved != n_have:
                raise ValueError(
                    f"{where}: group {k} has {n_saved} parameter(s) in the state but "
                    f"{n_have} in the optimizer"
                )
            settings = {key: v for key, v in group.items() if key != "params"}
            settings.update({key: v for key, v in saved.items() if key != "params"})
            unknown = sorted(set(settings) - set(self.defaults))
            if unknown:
                raise ValueError(f"{where}: unknown setting(s) {unknown} in group {k}")
            self._validate(settings)
            new_settings.append(settings)

        params = self._params()
        new_state: dict = {}
        for key, value in state_dict.get("state", {}).items():
            position, _, name = key.partition(".")
            if not position.isdigit() or name not in self.state_spec:
                raise ValueError(
                    f"{where}: unexpected state entry {key!r}; entries are "
                    f"'<position>.<name>' with name in {sorted(self.state_spec)}"
                )
            i = int(position)
            if i >= len(params):
                raise ValueError(
                    f"{where}: state entry {key!r} names parameter {i} but the optimizer "
                    f"has {len(params)}"
                )
            p, array = params[i], np.asarray(value)
            if self.state_spec[name] == "count":
                if array.shape != () or array.dtype.kind not in "iu":
                    raise ValueError(
                        f"{where}: state entry {key!r} must be an integer scalar; received "
                        f"shape {array.shape}, dtype {array.dtype}"
                    )
                new_state.setdefault(p, {})[name] = int(array)
            else:
                if array.shape != p.shape:
                    raise ValueError(
                        f"{where}: state entry {key!r} has shape {array.shape} but parameter "
                        f"{i} has shape {p.shape}"
                    )
                new_state.setdefault(p, {})[name] = np.array(array, dtype=p.dtype, copy=True)
        for p, entries in new_state.items():
            missing = sorted(set(self.state_spec) - set(entries))
            if missing:
                raise ValueError(
                    f"{where}: parameter {_position(params, p)} lacks state entries {missing}"
                )
        for group, settings in zip(self.param_groups, new_settings):
            group.update(settings)
        self.state = new_state

    # ----------------------------------------------------------------- repr
    def __repr__(self) -> str:
        signature = inspect.signature(type(self).__init__).parameters
        plain = {k: v.default for k, v in signature.items() if v.default is not v.empty}

        def differing(group):  # lr always, the other settings where they differ from plain
            return ", ".join(
                f"{k}={v}"
                for k, v in group.items()
                if k != "params" and (k == "lr" or k not in plain or v != plain[k])
            )

        n = len(self._params())
        if len(self.param_groups) == 1:
            return f"{self._name}({differing(self.param_groups[0])}; {n} parameters)"
        groups = "; ".join(
            f"group {k}: {len(g['params'])} parameters, {differing(g)}"
            for k, g in enumerate(self.param_groups)
        )
        return f"{self._name}({groups})"


# --------------------------------------------------------------------- validation helpers
def _number(opt: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{opt}: {name} must be a number; received {name}={value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{opt}: {name} must be a number; received {name}=nan")
    return value


def check_nonnegative(opt: str, group: dict, name: str) -> None:
    """``group[name] >= 0``, stored back as a Python float (no NumPy scalar upcasts later)."""
    value = _number(opt, name, group[name])
    if not value >= 0:
        raise ValueError(f"{opt}: {name} must be >= 0; received {name}={group[name]!r}")
    group[name] = value


def check_positive(opt: str, group: dict, name: str) -> None:
    """``group[name] > 0``, stored back as a Python float."""
    value = _number(opt, name, group[name])
    if not value > 0:
        raise ValueError(f"{opt}: {name} must be > 0; received {name}={group[name]!r}")
    group[name] = value


def check_beta(opt: str, group: dict, name: str) -> None:
    """``0 <= group[name] < 1`` (a decay rate of an exponentially weighted average)."""
    value = _number(opt, name, group[name])
    if not 0 <= value < 1:
        raise ValueError(f"{opt}: {name} must be in [0, 1); received {name}={group[name]!r}")
    group[name] = value


def decays(p: Tensor) -> bool:
    """Whether L2 regularization / weight decay applies to ``p``.

    A Parameter says so itself (``regularize``: False for biases and batch-norm scale and shift);
    a plain Tensor counts as a weight when it has 2 or more axes.
    """
    regularize = getattr(p, "regularize", None)
    return p.ndim >= 2 if regularize is None else bool(regularize)


def with_l2(p: Tensor, g: np.ndarray, weight_decay: float) -> np.ndarray:
    """g + weight_decay * W for a regularized parameter (a new array; ``p.grad`` is untouched)."""
    if weight_decay == 0 or not decays(p):
        return g
    return g + weight_decay * p.data


def _position(params: list, p) -> int:
    """Index of ``p`` in ``params`` by identity (a Tensor's == is elementwise)."""
    return next(i for i, q in enumerate(params) if q is p)
