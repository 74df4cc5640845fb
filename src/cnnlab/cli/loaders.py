"""Building what a command needs from names: datasets, models, models from checkpoints."""

from __future__ import annotations

from cnnlab.cli.common import CLIError
from cnnlab.data.errors import DataError

__all__ = ["parse_shape", "build_model", "load_dataset", "model_from_checkpoint", "check_fits",
           "guess_dataset", "FOLDER_LAYOUT"]

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


FOLDER_LAYOUT = ("DIR/train/CLASS/*.png and DIR/test/CLASS/*.png (one subfolder per class, the "
                 "same classes in both; PNG or JPEG)")


def guess_dataset(data_dir) -> str | None:
    """'folder' when ``data_dir`` holds ``train/`` and ``test/`` folders (the image-folder
    layout), else None (the caller's default applies)."""
    from pathlib import Path

    if data_dir is None:
        return None
    root = Path(data_dir).expanduser()
    return "folder" if (root / "train").is_dir() and (root / "test").is_dir() else None


def load_dataset(name: str, data_dir, split: str, download: bool = False, input_shape=None):
    """The ``split`` of dataset ``name``. ``input_shape`` (H, W, C) is what a folder's images
    are brought to (resized, and converted to grayscale for C = 1 or RGB for C = 3): the
    shape the model takes."""
    from cnnlab import data

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    try:
        if name == "mnist":
            return data.mnist(split, root=data_dir, download=download)
        if name == "fashion_mnist":
            if data_dir is None and not download:
                raise CLIError("fashion_mnist needs --data-dir DIR (IDX files) or --download")
            return data.fashion_mnist(split, root=data_dir, download=download)
    except DataError as e:  # the library's advice names its keyword; the user typed flags
        raise CLIError(str(e).replace("pass download=True", "add --download")) from None
    if data_dir is None:
        raise CLIError(f"dataset {name!r} needs --data-dir DIR")
    if name == "cifar10":
        return data.cifar10(split, root=data_dir)
    # folder: DIR/train and DIR/test, one subfolder per class in each
    from pathlib import Path

    root = Path(data_dir).expanduser() / split
    if not root.is_dir():
        raise CLIError(f"dataset 'folder' expects {root}: the layout is {FOLDER_LAYOUT}")
    if input_shape is None:
        return data.image_folder(root)
    h, w, c = input_shape
    if c not in (1, 3):
        raise CLIError(f"dataset 'folder': the model takes {c}-channel images; image folders "
                       "give grayscale (1) or RGB (3)")
    return data.image_folder(root, size=(h, w), grayscale=(c == 1))


def model_from_checkpoint(path):
    """(model with the checkpoint's weights, the checkpoint's description dict); an ONNX
    file imports its model, described as ``onnx:ABSOLUTE_PATH``."""
    from pathlib import Path

    from cnnlab.train.checkpoint import CheckpointError, load_checkpoint, read_metadata

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
    if Path(path).is_dir():
        found = [f.name for f in (Path(path) / "best.npz", Path(path) / "last.npz") if f.is_file()]
        hint = f"; it holds {' and '.join(found)}" if found else ""
        raise CLIError(f"{path} is a folder, not a checkpoint file: give a .npz file, e.g. "
                       f"{Path(path) / 'best.npz'}{hint}")
    # the description first, then only the weights that model has, each checked before it is
    # read (see load_checkpoint)
    info = read_metadata(path).get("extra", {}).get("model")
    if not info:
        raise CheckpointError(f"{path}: holds no model description (not written by cnnlab train)")
    try:
        model = build_model(info["name"], num_classes=info["num_classes"],
                            input_shape=tuple(info["input_shape"]), dropout=info.get("dropout"))
    except CLIError as e:  # the description in the file is wrong, not the command line
        raise CheckpointError(f"{path}: the model it describes cannot be built: {e}") from None
    ckpt = load_checkpoint(path, model=model)
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not match model {info['name']!r}: {e}") from None
    model.eval()
    return model, info


def check_fits(info: dict, dataset, what: str) -> None:
    """A CLIError unless the checkpoint's model (``info``) takes ``dataset``'s images and has
    an output for each of its labels."""
    shape = tuple(int(v) for v in dataset.x.shape[1:])
    expected = tuple(int(v) for v in info["input_shape"])
    if shape != expected:
        raise CLIError(f"the checkpoint's {info['name']} takes {_hwc(expected)} images but "
                       f"{what} has {_hwc(shape)} images")
    top = int(dataset.y.max()) if len(dataset.y) else -1
    if top >= int(info["num_classes"]):
        raise CLIError(f"the checkpoint's {info['name']} has {info['num_classes']} classes but "
                       f"{what} has labels up to {top}")


def _hwc(shape) -> str:
    return "x".join(str(v) for v in shape)
