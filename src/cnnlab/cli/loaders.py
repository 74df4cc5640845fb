"""Building what a command needs from names: datasets, models, models from checkpoints."""

from __future__ import annotations

from cnnlab.cli.common import CLIError

__all__ = ["parse_shape", "build_model", "load_dataset", "model_from_checkpoint"]

DATASETS = ("mnist", "fashion_mnist", "cifar10", "folder")


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise CLIError(f"--input-shape must be H,W,C with positive integers; received {text!r}")
    return shape


def _check_model(name: str) -> None:
    from cnnlab import models

    if name not in models.names():
        raise CLIError(f"unknown model {name!r}; valid models: {', '.join(models.names())}")


def _onnx_model(name: str, num_classes=None, input_shape=None, seed=0):
    """An ONNX file (``model.onnx`` or ``onnx:/path/model.onnx``) as a cnnlab model, its head
    replaced when ``num_classes`` differs (issue 16)."""
    from cnnlab.cli.common import user_errors

    path = name[len("onnx:"):] if name.startswith("onnx:") else name
    with user_errors():
        import cnnlab.onnx

        try:
            model = cnnlab.onnx.load(path)
        except cnnlab.onnx.ONNXError as e:
            raise CLIError(str(e)) from None
    have = getattr(model, "input_shape", None)
    if input_shape is not None and have is not None and tuple(input_shape) != tuple(have):
        raise CLIError(f"{path} takes {tuple(have)} images, not {tuple(input_shape)}")
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        from cnnlab.models import replace_head

        replace_head(model, int(num_classes), seed=seed)
    return model


def build_model(name: str, num_classes=None, input_shape=None, dropout=None, seed=0):
    """A zoo model; ``input_shape`` (H, W, C) becomes the builders' ``input_size`` and
    ``in_channels``; settings left at None keep the builder's defaults. An ONNX file's path
    (``*.onnx``, or ``onnx:PATH`` as checkpoints record it) imports that model."""
    from cnnlab import models

    if name.startswith("onnx:") or name.endswith(".onnx"):
        return _onnx_model(name, num_classes, input_shape, seed)
    _check_model(name)
    kwargs = {}
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    if input_shape is not None:
        h, w, c = (int(v) for v in input_shape)
        kwargs["input_size"] = (h, w)
        kwargs["in_channels"] = c
    if dropout is not None:
        kwargs["dropout"] = dropout
    if seed is not None:
        kwargs["seed"] = seed
    try:
        return models.get(name, **kwargs)
    except TypeError as e:
        if dropout is not None and "dropout" in str(e):
            raise CLIError(f"--dropout: model {name!r} has no dropout setting") from None
        raise CLIError(f"cannot build model {name!r} with {kwargs}: {e}") from None
    except ValueError as e:
        raise CLIError(f"cannot build model {name!r} with {kwargs}: {e}") from None


def load_dataset(name: str, data_dir, split: str, download: bool = False):
    from cnnlab import data

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    if name == "mnist":
        return data.mnist(split, root=data_dir, download=download and data_dir is None)
    if name == "fashion_mnist":
        if data_dir is None and not download:
            raise CLIError("fashion_mnist needs --data-dir DIR (IDX files) or --download")
        return data.fashion_mnist(split, root=data_dir, download=download)
    if data_dir is None:
        raise CLIError(f"dataset {name!r} needs --data-dir DIR")
    if name == "cifar10":
        return data.cifar10(split, root=data_dir)
    # folder: DIR/train and DIR/test, one subfolder per class in each
    from pathlib import Path

    root = Path(data_dir) / split
    if not root.is_dir():
        raise CLIError(f"dataset 'folder' expects {root} (one subfolder per class)")
    return data.image_folder(root)


def model_from_checkpoint(path):
    """(model with the checkpoint's weights, the checkpoint's description dict); an ONNX
    file imports its model, described as ``onnx:ABSOLUTE_PATH``."""
    from cnnlab.train.checkpoint import CheckpointError, load_checkpoint

    if str(path).endswith(".onnx"):
        import os

        model = _onnx_model(str(path))
        shape = getattr(model, "input_shape", None)
        if shape is None or getattr(model, "num_classes", None) is None:
            raise CLIError(f"{path}: a model for training needs a fixed image size and a final "
                           f"Gemm/MatMul layer (the classifier)")
        info = {"name": "onnx:" + os.path.abspath(path), "num_classes": model.num_classes,
                "input_shape": list(shape), "dropout": None}
        model.eval()
        return model, info

    ckpt = load_checkpoint(path)
    info = ckpt["meta"].get("extra", {}).get("model")
    if not info:
        raise CheckpointError(f"{path}: holds no model description (not written by cnnlab train)")
    model = build_model(info["name"], num_classes=info["num_classes"],
                        input_shape=tuple(info["input_shape"]), dropout=info.get("dropout"))
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not match model {info['name']!r}: {e}") from None
    model.eval()
    return model, info
