"""PyTorch weights in and out: map a torchvision-style state_dict onto a zoo model.

This module never imports torch. It takes a state_dict whose values are NumPy arrays (the
caller converted them with ``{k: v.detach().numpy() for k, v in sd.items()}``) or any objects
with a ``.numpy()`` method (torch tensors: ``.detach()`` and ``.cpu()`` are called when present).

What changes on the way in (PyTorch -> cnnlab):

| PyTorch | cnnlab |
|---|---|
| conv weight (C_out, C_in/g, KH, KW) "OIHW" | (KH, KW, C_in/g, C_out) "HWIO": transpose(2,3,1,0) |
| dense weight (out, in) | (in, out): ``w.T`` |
| the first dense weight after a flatten, (out, C*H*W) | rows reordered to H, W, C (below) |
| batch norm ``weight``, ``bias`` | ``gamma``, ``beta`` |
| ``running_mean``, ``running_var`` | the same buffers |
| ``num_batches_tracked`` | dropped |

PyTorch flattens an (N, C, H, W) map as index ``c*H*W + h*W + w``; cnnlab flattens (N, H, W, C)
as ``h*W*C + w*C + c``. The weight of the dense layer right after the flatten is therefore
reshaped to (out, C, H, W), transposed to (H, W, C, out) and reshaped to (H*W*C, out). Which
dense layers follow a flatten, and the (H, W, C) of the map, come from the zoo model's
``flatten_inputs`` (e.g. ``{"classifier.0": (7, 7, 512)}`` for VGG at 224x224) or the
``flatten_inputs`` argument for a model of your own.

Names are torchvision's (``features.0.weight``, ``layer1.0.bn1.running_mean``); ``arch``
adds the renames of architectures torchvision lacks (the CIFAR ResNets: the reference
implementation's ``linear`` head and ``shortcut`` projection become ``fc`` and
``downsample``). Batch norm's eps is not in a state_dict: the zoo uses torchvision's (1e-5, and
1e-3 in GoogLeNet).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np

from cnnlab import nn
from cnnlab.nn.module import LoadResult

__all__ = ["convert_torch_state_dict", "load_torch_state_dict", "torch_state_dict"]

_CIFAR_RENAMES = [(r"^linear\.", "fc."), (r"\.shortcut\.", ".downsample.")]

# arch -> [(regex on the torch name, replacement)], applied in order
_RENAMES = {f"resnet{d}": _CIFAR_RENAMES for d in (20, 32, 44, 56, 110)}

_BATCH_NORMS = (nn.BatchNorm2D, nn.BatchNorm1D)

_BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
             "running_var": "running_var"}


def _to_numpy(value, name: str) -> np.ndarray:
    """An ndarray from an ndarray, a torch tensor (detached, on the CPU) or a nested list."""
    if isinstance(value, np.ndarray):
        return value
    for method in ("detach", "cpu"):
        if hasattr(value, method):
            value = getattr(value, method)()
    if hasattr(value, "numpy"):
        value = value.numpy()
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001 - report which entry could not be read
        raise TypeError(
            f"load_torch_state_dict: entry {name!r} is not an array or a tensor; received "
            f"{type(value).__name__} ({e})"
        ) from None


def _rename(name: str, arch: str | None) -> str:
    for pattern, repl in _RENAMES.get(arch or "", ()):
        name = re.sub(pattern, repl, name)
    return name


def _flatten_rows(w: np.ndarray, hwc, name: str) -> np.ndarray:
    """Torch dense weight (out, C*H*W) -> cnnlab (H*W*C, out)."""
    h, wd, c = hwc
    out, fan_in = w.shape
    if fan_in != c * h * wd:
        raise ValueError(
            f"load_torch_state_dict: {name} has {fan_in} inputs in the state dict, but the "
            f"model flattens a {h}x{wd}x{c} map ({h * wd * c} inputs) before it; build the "
            "model with the input size the weights were trained on"
        )
    return w.reshape(out, c, h, wd).transpose(2, 3, 1, 0).reshape(h * wd * c, out)


def convert_torch_state_dict(model: nn.Module, state_dict, arch: str | None = None, *,
                             flatten_inputs: dict | None = None) -> OrderedDict:
    """The cnnlab state dict (name -> ndarray) for ``model`` from a PyTorch ``state_dict``.

    Does the renaming and re-layout described in the module docstring; does not load.
    Entries whose module the model lacks are kept under their (renamed) torch name, so that
    :meth:`~cnnlab.nn.Module.load_state_dict` reports them as unexpected.

    Shape:
        conv (O, I/g, KH, KW) -> (KH, KW, I/g, O); dense (out, in) -> (in, out).

    >>> from cnnlab.models import lenet5
    >>> model = lenet5(seed=0)
    >>> torch_sd = torch_state_dict(model)  # a state dict in PyTorch's layout
    >>> convert_torch_state_dict(model, torch_sd)["features.0.weight"].shape
    (5, 5, 1, 6)
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(
            f"load_torch_state_dict: state_dict must be a mapping name -> tensor or array; "
            f"received {type(state_dict).__name__}"
        )
    if arch is not None:
        from cnnlab.models import names  # the registry (imported here: it imports this module)

        if arch not in _RENAMES and arch not in names():
            raise ValueError(
                f"load_torch_state_dict: unknown arch {arch!r}; use one of {names()} or None "
                "(the model's own)"
            )
    arch = arch if arch is not None else getattr(model, "arch", None)
    flat = dict(getattr(model, "flatten_inputs", {}) if flatten_inputs is None
                else flatten_inputs)
    modules = dict(model.named_modules())
    out = OrderedDict()
    for torch_name, value in state_dict.items():
        if torch_name.endswith("num_batches_tracked"):
            continue
        name = _rename(torch_name, arch)
        path, _, leaf = name.rpartition(".")
        module = modules.get(path)
        w = _to_numpy(value, torch_name)
        if isinstance(module, nn.Conv2D) and leaf == "weight":
            if w.ndim != 4:
                raise ValueError(
                    f"load_torch_state_dict: {torch_name} should be a 4-D OIHW conv weight; "
                    f"received shape {w.shape}"
                )
            out[name] = w.transpose(2, 3, 1, 0)  # (O, I, KH, KW) -> (KH, KW, I, O)
        elif isinstance(module, nn.Dense) and leaf == "weight":
            if w.ndim != 2:
                raise ValueError(
                    f"load_torch_state_dict: {torch_name} should be a 2-D (out, in) dense "
                    f"weight; received shape {w.shape}"
                )
            out[name] = _flatten_rows(w, flat[path], torch_name) if path in flat else w.T
        elif isinstance(module, _BATCH_NORMS) and leaf in _BN_NAMES:
            out[f"{path}.{_BN_NAMES[leaf]}"] = w
        else:
            out[name] = w
    return out


def load_torch_state_dict(model: nn.Module, state_dict, arch: str | None = None, *,
                          flatten_inputs: dict | None = None, strict: bool = True) -> LoadResult:
    """Load PyTorch weights (torchvision names and layouts) into a cnnlab model.

    Args:
        model: a zoo model (or any model whose names follow the torch one's).
        state_dict: name -> ndarray (``v.detach().numpy()``) or tensor-like with ``.numpy()``.
        arch: the name mapping to use; default ``model.arch`` (set by the zoo builders).
        flatten_inputs: {dense layer name: (H, W, C) of the map flattened before it}; default
            ``model.flatten_inputs``.
        strict: every parameter and buffer of the model must be given, and nothing else
            (after dropping ``num_batches_tracked``); otherwise the leftovers are returned.

    Returns:
        ``LoadResult(missing, unexpected)`` in cnnlab names (both empty after a strict load).
        Nothing changes when an error is raised (names and shapes are all checked first).

    Call ``model.eval()`` before comparing outputs with the PyTorch model in eval mode.

    >>> from cnnlab.models import lenet5
    >>> source, target = lenet5(seed=0), lenet5(seed=1)
    >>> load_torch_state_dict(target, torch_state_dict(source))
    LoadResult(missing=[], unexpected=[])
    >>> target.features[0].weight.shape
    (5, 5, 1, 6)
    """
    converted = convert_torch_state_dict(model, state_dict, arch, flatten_inputs=flatten_inputs)
    return model.load_state_dict(converted, strict=strict)


def torch_state_dict(model: nn.Module, *, flatten_inputs: dict | None = None) -> OrderedDict:
    """The inverse map: the model's weights as a PyTorch-layout state dict of ndarrays.

    Conv weights HWIO -> OIHW, dense (in, out) -> (out, in) (rows after a flatten reordered to
    C, H, W), batch norm ``gamma``/``beta`` -> ``weight``/``bias``. Load it in PyTorch with
    ``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()},
    strict=False)`` (``num_batches_tracked`` is not produced). The CIFAR ResNets keep cnnlab's
    ``fc``/``downsample`` names.

    Shape:
        conv (KH, KW, I/g, O) -> (O, I/g, KH, KW); dense (in, out) -> (out, in).

    >>> from cnnlab.models import lenet5
    >>> torch_state_dict(lenet5(seed=0))["features.0.weight"].shape
    (6, 1, 5, 5)
    """
    flat = dict(getattr(model, "flatten_inputs", {}) if flatten_inputs is None
                else flatten_inputs)
    out = OrderedDict()
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        if isinstance(module, nn.Conv2D):
            out[prefix + "weight"] = np.ascontiguousarray(module.weight.data.transpose(3, 2, 0, 1))
            if module.bias is not None:
                out[prefix + "bias"] = module.bias.data.copy()
        elif isinstance(module, nn.Dense):
            w = module.weight.data  # (in, out)
            if path in flat:
                h, wd, c = flat[path]
                # (H*W*C, out) -> (H, W, C, out) -> (out, C, H, W) -> (out, C*H*W)
                w = w.reshape(h, wd, c, -1).transpose(3, 2, 0, 1).reshape(w.shape[1], -1)
            else:
                w = w.T
            out[prefix + "weight"] = np.ascontiguousarray(w)
            if module.bias is not None:
                out[prefix + "bias"] = module.bias.data.copy()
        elif isinstance(module, _BATCH_NORMS):
            out[prefix + "weight"] = module.gamma.data.copy()
            out[prefix + "bias"] = module.beta.data.copy()
            out[prefix + "running_mean"] = np.array(module.running_mean, copy=True)
            out[prefix + "running_var"] = np.array(module.running_var, copy=True)
        else:
            own = list(module.named_parameters(recurse=False))
            if own:
                raise ValueError(
                    f"torch_state_dict: no PyTorch layout is known for {type(module).__name__} "
                    f"({path!r}), which owns parameters {[n for n, _ in own]}"
                )
    return out
