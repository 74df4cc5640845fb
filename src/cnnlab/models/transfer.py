"""Transfer learning: load pretrained weights, freeze, replace the head, fine-tune.

The recipe (Keras's and PyTorch's)::

    model = models.get("resnet18", num_classes=1000)            # the source architecture
    load_pretrained(model, state)                               # e.g. checkpoint["model"]
    replace_head(model, 5, seed=0)                              # a new 5-class head
    freeze_until(model, "layer4")                               # or freeze(model, "features")
    opt = optim.Adam([p for p in model.parameters() if p.requires_grad])
    fit(model, (x, y), optimizer=opt, epochs=3)

or :func:`prepare_fine_tuning` for all of it in one call (what ``cnnlab train --from CKPT
--freeze PREFIX --num-classes K`` does).

Frozen parameters get ``requires_grad = False``: backward computes no gradient for them and
optimizers skip them, so they stay bitwise the same. Batch normalization also keeps running
statistics, which training mode would keep updating; by default a batch-norm layer whose
parameters are all frozen is switched to :class:`FrozenBatchNorm2D` (or 1D): it always
normalizes with its running statistics and never updates them (Keras's behaviour for
non-trainable batch norm), so a frozen part of a network computes the same function during
fine-tuning as in inference.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnnlab import nn
from cnnlab._validate import as_generator, check_positive_int, name_matches
from cnnlab.nn.freezing import FrozenBatchNorm1D, FrozenBatchNorm2D
from cnnlab.nn.freezing import freeze_bn_stats as freeze_bn_stats_of
from cnnlab.tensor import Tensor

__all__ = [
    "FrozenBatchNorm1D",
    "FrozenBatchNorm2D",
    "PretrainedLoad",
    "freeze",
    "freeze_until",
    "head_name",
    "load_pretrained",
    "prepare_fine_tuning",
    "replace_head",
    "unfreeze",
]


# ------------------------------------------------------------------------ loading
class PretrainedLoad(NamedTuple):
    """What :func:`load_pretrained` did, in cnnlab names."""

    loaded: list  # copied into the model
    skipped: list  # in both, but the shapes differ (a head for another number of classes)
    missing: list  # in the model only: they keep their current values
    unexpected: list  # in the state only: ignored


def load_pretrained(model: nn.Module, state, *, exclude=(), skip_mismatched: bool = True,
                    strict: bool = False) -> PretrainedLoad:
    """Copy the weights of ``state`` (name -> array) that fit ``model`` into it.

    Unlike :meth:`~cnnlab.nn.Module.load_state_dict`, names that do not match and (with
    ``skip_mismatched``) entries whose shapes differ are skipped and reported, which is what
    reusing a network for a new task needs: a 1000-class head does not fit a 5-class one.

    Args:
        state: a mapping name -> ndarray: ``model.state_dict()`` of the source, the ``"model"``
            entry of :func:`cnnlab.train.load_checkpoint`, or
            :func:`~cnnlab.models.torch_import.convert_torch_state_dict`'s result.
        exclude: name prefixes not to load (e.g. ``("fc",)``).
        skip_mismatched: skip entries whose shape differs; False makes them an error.
        strict: raise unless every parameter and buffer of the model is loaded.

    Returns:
        :class:`PretrainedLoad` (loaded, skipped, missing, unexpected).

    >>> from cnnlab.models import lenet5
    >>> source, target = lenet5(10, seed=0), lenet5(3, seed=1)
    >>> report = load_pretrained(target, source.state_dict())
    >>> report.skipped
    ['classifier.4.weight', 'classifier.4.bias']
    """
    if not hasattr(state, "keys"):
        raise TypeError(
            f"load_pretrained: state must be a mapping name -> array; received "
            f"{type(state).__name__}"
        )
    if isinstance(exclude, str):
        exclude = (exclude,)
    current = model.state_dict()
    chosen, skipped = {}, []
    for name, value in state.items():
        if name not in current or any(name_matches(name, p) for p in exclude):
            continue
        shape = np.shape(value.data if isinstance(value, Tensor) else value)
        if tuple(shape) != current[name].shape:
            if not skip_mismatched:
                raise ValueError(
                    f"load_pretrained: {name!r} has shape {current[name].shape} in the model "
                    f"but {tuple(shape)} in the state (pass skip_mismatched=True to skip it)"
                )
            skipped.append(name)
            continue
        chosen[name] = value
    missing = [n for n in current if n not in chosen]
    unexpected = [n for n in state if n not in current]
    if strict and missing:
        raise ValueError(f"load_pretrained: strict, but these were not loaded: {missing}")
    model.load_state_dict(chosen, strict=False)
    return PretrainedLoad(list(chosen), skipped, missing, unexpected)


# ------------------------------------------------------------------------ the head
def head_name(model: nn.Module) -> str:
    """The name of the model's output layer: ``model.head_name`` (zoo models) or else the
    last Dense layer in definition order.

    >>> from cnnlab.models import resnet20
    >>> head_name(resnet20(init="zeros"))
    'fc'
    """
    name = getattr(model, "head_name", None)
    if isinstance(name, str):
        return name
    dense = [n for n, m in model.named_modules() if isinstance(m, nn.Dense)]
    if not dense:
        raise ValueError(
            f"replace_head: {type(model).__name__} has no Dense layer to replace; give the "
            "head's name with name=..."
        )
    return dense[-1]


def _get(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        tops = [n for n, _ in model.named_children()]
        raise ValueError(
            f"{type(model).__name__} has no layer named {name!r}; its top-level layers are "
            f"{tops} (nested names are dotted, e.g. 'features.0')"
        )
    return modules[name]


def _set_child(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the sub-module ``name`` (dotted) is."""
    parent_name, _, key = name.rpartition(".")
    parent = _get(model, parent_name) if parent_name else model
    if isinstance(parent, nn.Sequential):
        # nn.Sequential has no __setitem__: replace the entry of its ordered dict of layers
        parent._layers[key] = new
    elif isinstance(parent, (nn.ModuleList,)):
        parent[int(key)] = new
    elif isinstance(parent, nn.Concat):
        parent._branches[int(key)] = new
    else:
        setattr(parent, key, new)


def replace_head(model: nn.Module, num_classes, seed=None, *, name: str | None = None,
                 init="he_normal") -> nn.Module:
    """Give ``model`` a new output layer for ``num_classes`` classes (in place; returns it).

    The head (``name``, default :func:`head_name`) must be a Dense layer; it becomes a fresh
    Dense(in_features, num_classes) initialized with ``init`` from ``seed``, trainable, in the
    model's dtype. GoogLeNet's auxiliary heads, when present, are replaced too. Build the
    optimizer after this call: the old head's parameters are gone.

    Shape:
        the model's output becomes (N, num_classes).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab.models import lenet5
    >>> model = replace_head(lenet5(seed=0), 3, seed=0)
    >>> model(cl.tensor(np.zeros((2, 28, 28, 1), np.float32))).shape
    (2, 3)
    """
    check_positive_int(num_classes, "num_classes", "replace_head")
    rng = as_generator(seed, "replace_head")
    names = [name or head_name(model)]
    names += [f"{aux}.fc2" for aux in ("aux1", "aux2")
              if name is None and getattr(model, aux, None) is not None]
    for n in names:
        old = _get(model, n)
        if not isinstance(old, nn.Dense):
            raise TypeError(
                f"replace_head: the head {n!r} is a {type(old).__name__}, not a Dense layer"
            )
        new = nn.Dense(old.in_features, int(num_classes), bias=old.bias is not None, init=init,
                       seed=rng, dtype=old.weight.dtype)
        _set_child(model, n, new)
    if hasattr(model, "num_classes"):
        model.num_classes = int(num_classes)
    return model


# ------------------------------------------------------------------------ freezing
def freeze(model: nn.Module, *prefixes: str, freeze_bn_stats: bool = True) -> list:
    """Freeze the parameters named by each prefix (all of them when none is given): the
    several-prefix form of :meth:`Module.freeze <cnnlab.nn.Module.freeze>`, which does the work.

    A prefix covers the parameters at or under a dotted name (``"features"`` covers
    ``features.0.weight``, not ``features_x.w``). With ``freeze_bn_stats`` the batch norms
    whose parameters are now all frozen stop updating their running statistics (module
    docstring). Returns the names frozen.

    >>> from cnnlab.models import lenet5
    >>> freeze(lenet5(seed=0), "features")
    ['features.0.weight', 'features.0.bias', 'features.3.weight', 'features.3.bias']
    """
    names = []
    for prefix in prefixes or ("",):
        names += [n for n in model.freeze(prefix, freeze_bn_stats=freeze_bn_stats)
                  if n not in names]
    return names


def unfreeze(model: nn.Module, *prefixes: str) -> list:
    """Make the parameters under each prefix trainable again (all when none is given); batch
    norms with a trainable parameter go back to ordinary batch norm. Returns the names.

    >>> from cnnlab.models import lenet5
    >>> unfreeze(lenet5(seed=0), "classifier.4")
    ['classifier.4.weight', 'classifier.4.bias']
    """
    names = []
    for prefix in prefixes or ("",):
        names += [n for n in model.unfreeze(prefix) if n not in names]
    return names


def freeze_until(model: nn.Module, layer_name: str, *, inclusive: bool = True,
                 freeze_bn_stats: bool = True) -> list:
    """Freeze every parameter defined before the layer ``layer_name`` (and its own, when
    ``inclusive``), in definition order — the order of ``named_parameters()``, which in the zoo
    is the order of the forward pass. Returns the names frozen.

    >>> from cnnlab.models import lenet5
    >>> len(freeze_until(lenet5(seed=0), "classifier.2"))   # all but the head
    8
    """
    if not isinstance(layer_name, str):
        raise TypeError(
            f"freeze_until: layer_name must be a str; received {type(layer_name).__name__}"
        )
    _get(model, layer_name)  # a clear error for an unknown name
    params = list(model.named_parameters())
    inside = [i for i, (n, _) in enumerate(params) if name_matches(n, layer_name)]
    if not inside:
        raise ValueError(f"freeze_until: the layer {layer_name!r} has no parameters to stop at")
    end = inside[-1] + 1 if inclusive else inside[0]
    names = [n for n, _ in params[:end]]
    for _, p in params[:end]:
        p.requires_grad = False
        p.grad = None
    if freeze_bn_stats:
        freeze_bn_stats_of(model)
    return names


# ------------------------------------------------------------------------ all of it
def prepare_fine_tuning(model: nn.Module, state=None, *, num_classes=None, freeze_prefixes=(),
                        freeze_until_layer: str | None = None, seed=None,
                        freeze_bn_stats: bool = True) -> dict:
    """Load ``state`` into ``model``, give it a ``num_classes`` head, freeze; in place.

    1. ``state`` (name -> array, or None): loaded with :func:`load_pretrained` (entries whose
       shape does not fit, such as another task's head, are skipped);
    2. if ``num_classes`` differs from the model's, :func:`replace_head` (``seed``);
    3. :func:`freeze` each of ``freeze_prefixes`` and/or :func:`freeze_until`
       ``freeze_until_layer``.

    Returns ``{"loaded", "skipped", "missing", "unexpected", "head", "frozen",
    "trainable"}`` (lists of names; ``head`` the replaced head's name or None).

    >>> from cnnlab.models import lenet5
    >>> model = lenet5(seed=1)
    >>> info = prepare_fine_tuning(model, lenet5(seed=0).state_dict(), num_classes=3,
    ...                            freeze_prefixes=("features",))
    >>> info["head"], len(info["frozen"]), model.num_classes
    ('classifier.4', 4, 3)
    """
    report = PretrainedLoad([], [], [], [])
    if state is not None:
        report = load_pretrained(model, state)
    head = None
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        head = head_name(model)
        replace_head(model, num_classes, seed)
    if isinstance(freeze_prefixes, str):
        freeze_prefixes = (freeze_prefixes,)
    frozen = []
    if freeze_prefixes:
        frozen += freeze(model, *freeze_prefixes, freeze_bn_stats=freeze_bn_stats)
    if freeze_until_layer is not None:
        frozen += [n for n in freeze_until(model, freeze_until_layer,
                                           freeze_bn_stats=freeze_bn_stats) if n not in frozen]
    return {
        "loaded": report.loaded,
        "skipped": report.skipped,
        "missing": report.missing,
        "unexpected": report.unexpected,
        "head": head,
        "frozen": frozen,
        "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
    }
