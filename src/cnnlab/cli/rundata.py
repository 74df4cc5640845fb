"""The data splits of a training run, rebuilt the same way by every command that reads a run.

A run's splits come from its settings (config.json): ``train`` (what the weights saw),
``train_dev`` (``--train-dev-fraction``: held out from the training distribution, never trained
on), ``dev`` (``--val-fraction`` of the training data, or ``--dev-data``), ``test`` (the
dataset's test split, or ``--test-data``). Splits are seeded, so ``diagnose``, ``errors`` and
``report`` see exactly the images ``train`` used.

``--dev-data`` / ``--test-data`` take ``mnist-shifted`` (the bundled digits made blurry, blocky
and noisy: :func:`cnnlab.data.mnist_shifted`) or a folder: IDX files (one ``*images-idx3-ubyte``
and one ``*labels-idx1-ubyte``, optionally .gz; of MNIST's four files, the ``t10k-`` pair) or
one subfolder of images per class, named as the training classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnnlab.cli.common import CLIError, user_errors
from cnnlab.cli.loaders import load_dataset

__all__ = ["SHIFTED", "SPLITS", "load_source", "run_splits", "read_run", "split_options"]

SHIFTED = "mnist-shifted"
SPLITS = ("train", "train_dev", "dev", "test")
# the option that produces each split, for messages
split_options = {"train_dev": "--train-dev-fraction F", "dev": "--val-fraction F or --dev-data",
                 "test": "the dataset's test split or --test-data"}


def _idx_pair(folder: Path):
    images = sorted(p for p in folder.iterdir() if "images-idx3-ubyte" in p.name)
    labels = sorted(p for p in folder.iterdir() if "labels-idx1-ubyte" in p.name)
    if len(images) > 1 and any(p.name.startswith("t10k-") for p in images):
        # MNIST's four files: the test pair is the one from another source than training
        images = [p for p in images if p.name.startswith("t10k-")]
        labels = [p for p in labels if p.name.startswith("t10k-")]
    if len(images) == 1 and len(labels) == 1:
        return images[0], labels[0]
    if images or labels:
        raise CLIError(f"{folder}: expected one *images-idx3-ubyte[.gz] and one "
                       f"*labels-idx1-ubyte[.gz] file; found {len(images)} and {len(labels)}")
    return None


def load_source(spec: str, option: str, role: str, input_shape, classes, data_dir=None,
                download: bool = False):
    """The dataset named by ``--dev-data``/``--test-data`` (``option``): ``mnist-shifted``
    (its ``role`` half: 'dev' or 'test') or a folder; checked against the training images'
    ``input_shape`` (H, W, C) and ``classes``."""
    from cnnlab import data

    h, w, c = (int(v) for v in input_shape)
    with user_errors():
        if spec == SHIFTED:
            ds = data.mnist_shifted(role, root=data_dir, download=download and data_dir is None)
        else:
            folder = Path(spec).expanduser()
            if not folder.is_dir():
                raise CLIError(f"{option} {spec}: no such folder (expected {SHIFTED}, a folder "
                               "of IDX files, or one with a subfolder of images per class)")
            pair = _idx_pair(folder)
            if pair is not None:
                images, labels = data.load_idx_pair(*pair, image_shape=None,
                                                    num_classes=len(classes))
                ds = data.ArrayDataset(images[..., None].astype(np.float32) / 255, labels,
                                       classes=classes)
            else:
                ds = data.image_folder(folder, size=(h, w), grayscale=(c == 1), strict=True)
                known = [str(k) for k in classes]
                unknown = [k for k in ds.classes if k not in known]
                if unknown:
                    raise CLIError(f"{option} {spec}: class folder(s) {', '.join(unknown)} are "
                                   f"not training classes ({', '.join(known)})")
                remap = np.array([known.index(k) for k in ds.classes], dtype=np.int64)
                files = ds.files
                ds = data.ArrayDataset(ds.x, remap[ds.y], classes=known)
                ds.files = files  # each example's source, for errors.csv
    if tuple(ds.x.shape[1:]) != (h, w, c):
        raise CLIError(f"{option} {spec}: images are {tuple(ds.x.shape[1:])} but the training "
                       f"images are {(h, w, c)} (H, W, C)")
    if len(ds) == 0:
        raise CLIError(f"{option} {spec}: holds no images")
    if int(ds.y.max()) >= len(classes):
        raise CLIError(f"{option} {spec}: has label {int(ds.y.max())} but the training data has "
                       f"{len(classes)} classes (labels 0..{len(classes) - 1})")
    return ds


def run_splits(s: dict) -> dict:
    """``{"train", "train_dev", "dev", "test", "full", "input_shape", "classes"}`` from the
    settings ``s`` of a run (a missing split is None; ``full``: the training data before any
    split). A folder dataset's images are read at the recorded ``input_shape``."""
    from cnnlab.data import train_dev_split

    wanted = s.get("input_shape") if s["dataset"] == "folder" else None
    wanted = None if wanted is None else tuple(wanted)
    full = load_dataset(s["dataset"], s["data_dir"], "train", s.get("download", False), wanted)
    input_shape = tuple(int(v) for v in full.x.shape[1:])
    classes = list(getattr(full, "classes", None) or range(int(full.y.max()) + 1))
    # mnist-shifted shifts the run's own MNIST (--data-dir, or the --download cache)
    mnist = s["dataset"] == "mnist"
    shifted = {"data_dir": s["data_dir"] if mnist else None,
               "download": bool(mnist and s.get("download"))}
    if s.get("test_data"):
        test = load_source(s["test_data"], "--test-data", "test", input_shape, classes,
                           **shifted)
    else:
        test = load_dataset(s["dataset"], s["data_dir"], "test", s.get("download", False),
                            wanted)
    if s.get("dev_data"):
        rest = full
        dev = load_source(s["dev_data"], "--dev-data", "dev", input_shape, classes, **shifted)
    elif s["val_fraction"] > 0:
        rest, dev = train_dev_split(full, s["val_fraction"], seed=s["seed"], stratify=True)
    else:
        rest, dev = full, None
    if s.get("train_dev_fraction"):
        train, train_dev = train_dev_split(rest, s["train_dev_fraction"], seed=s["seed"] + 1,
                                           stratify=True)
    else:
        train, train_dev = rest, None
    return {"train": train, "train_dev": train_dev, "dev": dev, "test": test, "full": full,
            "input_shape": input_shape, "classes": classes}


def read_run(run_dir) -> tuple[Path, dict, dict]:
    """(folder, settings from config.json, metrics.json) of a finished ``cnnlab train`` run."""
    out = Path(run_dir)
    if not out.is_dir():
        raise CLIError(f"{out}: no such run folder")
    found = []
    for name in ("config.json", "metrics.json"):
        path = out / name
        if not path.is_file():
            raise CLIError(f"{out}: no {name} (not a finished cnnlab train run)")
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise CLIError(f"{path}: unreadable ({e})") from None
        if not isinstance(found[-1], dict):
            raise CLIError(f"{path}: expected a JSON object")
    return out, found[0], found[1]


def split_of(run_dir, settings: dict, split: str):
    """The dataset of ``split`` in a run, or a CLIError naming the option that produces it."""
    if split not in SPLITS:
        raise CLIError(f"--split must be one of {', '.join(SPLITS)}; received {split!r}")
    with user_errors():
        ds = run_splits(settings)[split]
    if ds is None:
        raise CLIError(f"{run_dir}: the run has no {split} split (train with "
                       f"{split_options[split]})")
    return ds


def run_model(run_dir):
    """(model, description) from the run's last.npz: the weights metrics.json was computed
    with."""
    from cnnlab.cli.loaders import model_from_checkpoint

    path = Path(run_dir) / "last.npz"
    if not path.is_file():
        raise CLIError(f"{run_dir}: no last.npz (not a finished cnnlab train run)")
    with user_errors():
        return model_from_checkpoint(path)


def probabilities(model, x) -> np.ndarray:
    """Softmax of the model's logits on ``x`` (N, H, W, C), (N, K) float64."""
    from cnnlab.analysis.errors import softmax
    from cnnlab.train import predict

    return softmax(predict(model, x))


def arrays_of(ds) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a dataset as two arrays."""
    if hasattr(ds, "x") and hasattr(ds, "y"):
        return ds.x, ds.y
    from cnnlab.data.dataset import _batch_of

    return _batch_of(ds, np.arange(len(ds)))
