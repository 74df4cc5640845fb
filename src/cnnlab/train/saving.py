"""Save a model to one file and load it back: ``cnnlab.save(model, path)``, ``cnnlab.load(path)``.

The file is a cnnlab checkpoint (:func:`cnnlab.train.save_checkpoint`: a NumPy ``.npz`` of
plain arrays plus JSON metadata, read with ``allow_pickle=False``; loading it never runs code),
the same format ``cnnlab train`` writes, so ``cnnlab.load("runs/lenet5-mnist/best.npz")`` gives
the trained model back in Python. A zoo model is described in the metadata (its name, classes,
input shape and the builder's settings), so :func:`load` rebuilds it; any other model is saved
by its weights, and loaded into a model you build: ``cnnlab.load(path, model=net)``.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["describe", "load", "save"]

# builder settings worth recording (JSON-able, shape the architecture); the rest (seed, init,
# dtype) only decide the initial weights, which the file replaces
_SETTINGS = ("variant", "width", "aux_logits", "transform_input", "batch_norm",
             "zero_init_residual")


def describe(model) -> dict | None:
    """The description :func:`load` rebuilds a zoo model from, or None for another model.

    ``{"name", "num_classes", "input_shape": [H, W, C], "dropout", "settings": {...}}`` (the
    ``"model"`` entry ``cnnlab train`` writes, plus the builder's settings).
    """
    from cnnlab import models

    config = dict(getattr(model, "config", None) or {})
    name = config.get("name", getattr(model, "arch", None))
    if name not in models.names() or getattr(model, "input_shape", None) is None:
        return None
    settings = {k: config[k] for k in _SETTINGS
                if isinstance(config.get(k), (bool, int, float, str))}
    dropout = config.get("dropout")
    return {"name": name, "num_classes": int(model.num_classes),
            "input_shape": [int(v) for v in model.input_shape],
            "dropout": dropout if isinstance(dropout, (int, float)) else None,
            "settings": settings}


def save(model, path) -> Path:
    """Write ``model``'s weights and buffers (and, for a zoo model, its description) to
    ``path`` (a ``.npz`` file), atomically. Returns the path.

    >>> import tempfile, os, cnnlab
    >>> from cnnlab import models
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> _ = cnnlab.save(models.get("lenet5", num_classes=3, seed=0), path)
    >>> cnnlab.load(path).num_classes
    3
    """
    description = describe(model)
    extra = {"model": description} if description is not None else {}
    return save_checkpoint(path, model, extra=extra)


def load(path, model=None):
    """The model saved in ``path`` (by :func:`save` or ``cnnlab train``), in eval mode.

    ``model`` None: a zoo model is rebuilt from the file's description. Otherwise the weights
    are loaded into ``model`` (strictly: every name and shape must match), which is returned.
    Raises CheckpointError naming the file when it is not a cnnlab file, describes no zoo model
    (and no ``model`` was given), or does not match.
    """
    ckpt = load_checkpoint(path)
    info = ckpt["meta"].get("extra", {}).get("model")
    if model is None:
        if not info:
            raise CheckpointError(
                f"{path}: describes no zoo model; build the model and load the weights into it: "
                "cnnlab.load(path, model=net)"
            )
        model = _build(info, path)
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not match the model: {e}") from None
    model.eval()
    return model


def _build(info: dict, path):
    from cnnlab import models

    h, w, c = (int(v) for v in info["input_shape"])
    kwargs = dict(info.get("settings") or {})
    kwargs.update(num_classes=int(info["num_classes"]), input_size=(h, w), in_channels=c)
    if info.get("dropout") is not None:
        kwargs["dropout"] = info["dropout"]
    try:
        return models.get(info["name"], init="zeros", **kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild model {info['name']!r}: {e}") from None
