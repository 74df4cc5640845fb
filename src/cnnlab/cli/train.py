"""``cnnlab train``: data, model, optimizer, fit, test metrics, files — and resume."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from cnnlab.cli.common import CLIError, write_json
from cnnlab.cli.loaders import (
    FOLDER_LAYOUT,
    build_model,
    guess_dataset,
    load_dataset,
    model_from_checkpoint,
    parse_shape,
)

__all__ = ["run_training", "test_metrics"]

DEFAULTS = {
    "model": "lenet5",
    "dataset": "mnist",
    "data_dir": None,
    "download": False,
    "epochs": 8,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": None,  # per optimizer, below
    "schedule": "none",
    "l2": 0.0,
    "dropout": None,
    "augment": False,
    "val_fraction": 0.1,
    "seed": 0,
    "from_checkpoint": None,
    "freeze": None,
    "num_classes": None,
    "input_shape": None,
}
_DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "rmsprop": 0.001,
               "adam": 0.001, "adamw": 0.001}
SCHEDULES = ("none", "step", "exponential", "inverse", "sqrt", "cosine")


def _settings(args) -> tuple[dict, Path, bool]:
    """The run's settings, its folder, and whether it resumes."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    if args.resume:
        out = Path(args.resume)
        config = out / "config.json"
        if not config.is_file():
            raise CLIError(f"--resume {out}: no config.json there (not a cnnlab train folder)")
        try:
            settings = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CLIError(f"{config}: unreadable ({e})") from None
        if not (out / "last.npz").is_file():
            raise CLIError(f"--resume {out}: no last.npz checkpoint to continue from")
        changed = [k for k, v in given.items() if k != "epochs" and v is not False]
        if changed:  # silently training with other settings than the user typed would mislead
            flags = ", ".join("--" + ("from" if k == "from_checkpoint" else k.replace("_", "-"))
                              for k in changed)
            raise CLIError(f"--resume {out} continues the run with the settings in its "
                           f"config.json; only --epochs may change (received {flags})")
        if "epochs" in given:  # the one setting a resumed run may change: train longer
            from cnnlab.train.checkpoint import load_checkpoint

            done = load_checkpoint(out / "last.npz")["meta"]["epoch"]
            if given["epochs"] < done:
                raise CLIError(f"--resume {out} --epochs {given['epochs']}: the run has "
                               f"already done {done} epochs; ask for at least that many")
            settings["epochs"] = given["epochs"]
        return settings, out, True
    settings = {**DEFAULTS, **given}
    if "dataset" not in given and guess_dataset(settings["data_dir"]) == "folder":
        settings["dataset"] = "folder"  # DIR/train and DIR/test: the image-folder layout
    if settings["input_shape"] is not None:
        if settings["dataset"] != "folder":
            raise CLIError(f"--input-shape is for --dataset folder (images are resized to "
                           f"it); dataset {settings['dataset']!r} has a fixed image size")
        settings["input_shape"] = list(parse_shape(settings["input_shape"]))
    if settings["optimizer"] not in _DEFAULT_LR:
        raise CLIError(f"unknown optimizer {settings['optimizer']!r}; valid optimizers: "
                       f"{', '.join(_DEFAULT_LR)}")
    if settings["schedule"] not in SCHEDULES:
        raise CLIError(f"unknown schedule {settings['schedule']!r}; valid schedules: "
                       f"{', '.join(SCHEDULES)}")
    if settings["lr"] is None:
        settings["lr"] = _DEFAULT_LR[settings["optimizer"]]
    for key in ("data_dir", "from_checkpoint"):  # absolute, so that --resume and evaluate
        if settings[key] is not None:              # work from any folder
            settings[key] = str(Path(settings[key]).expanduser().absolute())
    if args.out:
        out = Path(args.out)
    else:
        base = Path("runs") / f"{settings['model']}-{settings['dataset']}"
        out, k = base, 1
        while out.exists():
            k += 1
            out = Path(f"{base}-{k}")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder")
    if (out / "last.npz").exists():
        raise CLIError(f"--out {out} already holds a run (last.npz); use --resume {out} to "
                       "continue it or choose another --out")
    return settings, out, False


def _default_input_shape(name: str) -> tuple:
    from cnnlab import models

    if name not in models.names():
        raise CLIError(f"unknown model {name!r}; valid models: {', '.join(models.names())}")
    return models.default_input_shape(name)


def _check_classes(s: dict, full, test) -> None:
    """A classifier needs two classes to tell apart, and the test split the same classes."""
    present = np.unique(full.y)
    names = list(getattr(full, "classes", None) or [])
    if len(present) < 2:
        only = names[int(present[0])] if names and len(present) else "none"
        where = f" in {s['data_dir']}" if s["data_dir"] else ""
        raise CLIError(f"dataset {s['dataset']!r}{where} has training images of one class only "
                       f"({only}); a classifier needs at least two classes"
                       + (f" (layout: {FOLDER_LAYOUT})" if s["dataset"] == "folder" else ""))
    test_names = list(getattr(test, "classes", None) or [])
    if names and test_names and names != test_names:
        raise CLIError(f"dataset {s['dataset']!r}: the train and test splits have different "
                       f"classes ({', '.join(map(str, names))} vs "
                       f"{', '.join(map(str, test_names))}); give both the same class folders")


def _optimizer(name: str, params, lr: float):
    from cnnlab import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "nesterov":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    return optim.AdamW(params, lr=lr)


def _schedule(name: str, lr: float, epochs: int):
    """epoch -> lr for the named schedule (settings chosen to suit a run of ``epochs``)."""
    from cnnlab import optim

    if name == "none":
        return None
    if name == "step":
        return optim.StepDecay(lr, step_size=max(1, epochs // 3), gamma=0.3)
    if name == "exponential":
        return optim.ExponentialDecay(lr, rate=0.8)
    if name == "inverse":
        return optim.InverseTimeDecay(lr, decay_rate=0.5)
    if name == "sqrt":
        return optim.InverseSqrtDecay(lr, k=1.0)
    return optim.CosineDecay(lr, total_steps=epochs)


def _augmentation(seed: int):
    from cnnlab.data import transforms as T

    return T.Compose([T.RandomAffine(degrees=8, scale=(0.9, 1.1)), T.RandomShift(2)])


def test_metrics(model, dataset) -> dict:
    """Loss, accuracy, per-class precision/recall/F1 and the confusion matrix on ``dataset``."""
    from cnnlab import functional as F
    from cnnlab import metrics
    from cnnlab.tensor import Tensor
    from cnnlab.train import predict

    x, y = dataset.x, dataset.y
    logits = predict(model, x)
    k = logits.shape[-1]
    loss = float(F.cross_entropy(Tensor(logits.astype(np.float64)), y).data)
    pred = logits.argmax(axis=-1)
    p, r, f1 = metrics.precision_recall_f1(y, pred, num_classes=k)
    support = np.bincount(y, minlength=k)  # (K,) true images per class
    return {
        "test_accuracy": float(metrics.accuracy(y, pred)),
        "test_loss": loss,
        "num_classes": int(k),
        # undefined (0/0: a class never predicted or never present) is NaN, null in JSON
        "precision": _json_floats(p),
        "recall": _json_floats(r),
        "f1": _json_floats(f1),
        "support": [int(v) for v in support],
        "confusion_matrix": metrics.confusion_matrix(y, pred, num_classes=k).tolist(),
        "y_true": y,
        "y_pred": pred,
    }


def _json_floats(values) -> list:
    return [None if np.isnan(v) else float(v) for v in values]


def run_training(args) -> int:
    from cnnlab import train as tr
    from cnnlab.data import train_dev_split

    settings, out, resuming = _settings(args)
    verbose = not args.quiet
    s = settings
    folder = s["dataset"] == "folder"
    model = info = None
    if s["from_checkpoint"]:
        # a resumed fine-tuning run rebuilds its model from its own checkpoint (its head is
        # already the new one), so it does not need the source checkpoint any more
        model, info = model_from_checkpoint(out / "last.npz" if resuming else s["from_checkpoint"])
        if info["name"] != s["model"] and args.model is not None and not resuming:
            raise CLIError(f"--from {s['from_checkpoint']} holds a {info['name']!r} model, "
                           f"not {s['model']!r}")
        s["model"] = info["name"]
        if folder and s["input_shape"] is not None and not resuming:
            raise CLIError("--input-shape: with --from the images are brought to the shape the "
                           f"checkpoint's model takes, {tuple(info['input_shape'])}")
    # image folders are read at the size and channels the model takes
    wanted = None
    if folder:
        if info is not None:
            wanted = tuple(info["input_shape"])
        elif s["input_shape"] is not None:
            wanted = tuple(s["input_shape"])
        else:
            wanted = _default_input_shape(s["model"])
            s["input_shape"] = list(wanted)  # recorded, so that --resume reads the same
    full = load_dataset(s["dataset"], s["data_dir"], "train", s["download"], wanted)
    test = load_dataset(s["dataset"], s["data_dir"], "test", s["download"], wanted)
    input_shape = tuple(int(v) for v in full.x.shape[1:])
    if info is not None and tuple(info["input_shape"]) != input_shape:
        raise CLIError(f"--from: the checkpoint's model takes {tuple(info['input_shape'])} "
                       f"images but dataset {s['dataset']!r} has {input_shape}")
    _check_classes(s, full, test)
    if s["val_fraction"] > 0:
        train_ds, val_ds = train_dev_split(full, s["val_fraction"], seed=s["seed"], stratify=True)
    else:
        train_ds, val_ds = full, None
    classes = list(getattr(full, "classes", None) or range(int(full.y.max()) + 1))
    num_classes = s["num_classes"] or len(classes)
    labels_needed = int(max(full.y.max(), test.y.max())) + 1
    if num_classes < labels_needed:
        raise CLIError(f"--num-classes {num_classes} is too small: dataset {s['dataset']!r} has "
                       f"labels up to {labels_needed - 1}, so it needs at least {labels_needed}")

    if model is not None:
        if info["num_classes"] != num_classes:
            from cnnlab.models import replace_head

            replace_head(model, num_classes, seed=s["seed"])
        model.train()
    else:
        model = build_model(s["model"], num_classes=num_classes, input_shape=input_shape,
                            dropout=s["dropout"], seed=s["seed"])
    for prefix in s["freeze"] or []:
        try:  # also stops the running statistics of the batch norms it freezes
            frozen = model.freeze(prefix)
        except ValueError:  # Module.freeze raises when nothing matches
            frozen = []
        if not frozen:
            names = [n for n, _ in model.named_parameters()]
            raise CLIError(f"--freeze {prefix!r} matches no parameter; names start with: "
                           f"{', '.join(sorted({n.split('.')[0] for n in names}))}")

    optimizer = _optimizer(s["optimizer"], model.parameters(), s["lr"])
    callbacks = [
        tr.ModelCheckpoint(out, monitor="val_loss" if val_ds is not None else "loss"),
        tr.CSVLogger(out / "history.csv"),
        tr.JSONLogger(out / "history.jsonl"),
    ]
    schedule = _schedule(s["schedule"], s["lr"], s["epochs"])
    if schedule is not None:
        callbacks.append(tr.LRScheduler(schedule))
    description = {"name": s["model"], "num_classes": num_classes, "input_shape": input_shape,
                   "dropout": s["dropout"], "dataset": s["dataset"], "data_dir": s["data_dir"],
                   "classes": [str(c) for c in classes][:num_classes]}
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        write_json(out / "config.json", s)
    if verbose:
        what = "resuming" if resuming else "training"
        print(f"{what} {s['model']} on {s['dataset']} ({len(train_ds)} train, "
              f"{0 if val_ds is None else len(val_ds)} dev, {len(test)} test images) -> {out}")
    done = _epochs_done(out) if resuming else 0
    if resuming and done >= s["epochs"]:
        print(f"the run in {out} has finished its {_epochs(s['epochs'])} (add --epochs N to "
              "train longer); evaluating its final weights again")
    start = time.perf_counter()
    try:
        history = tr.fit(
            model, train_ds, val_ds, optimizer=optimizer, epochs=s["epochs"],
            batch_size=s["batch_size"], callbacks=callbacks, seed=s["seed"],
            transform=_augmentation(s["seed"]) if s["augment"] else None, l2=s["l2"],
            resume=out if resuming else None, verbose=verbose,
            extra={"model": description, "settings": s},
        )
    except tr.NonFiniteLossError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 1
    if history.interrupted:
        print(f"stopped; continue with: cnnlab train --resume {out}")
        return 130
    seconds = time.perf_counter() - start
    result = test_metrics(model, test)
    report = {k: v for k, v in result.items() if k not in ("y_true", "y_pred")}
    report.update({"epochs": history.epochs, "model": s["model"], "dataset": s["dataset"],
                   "weights": "last.npz"})
    write_json(out / "metrics.json", report)
    plots = _plots(out, history, result)
    print(f"test accuracy {result['test_accuracy']:.4f} (error "
          f"{100 * (1 - result['test_accuracy']):.2f}%), test loss {result['test_loss']:.4f}, "
          f"{seconds:.0f} s")
    print(f"  the test figures are those of the final weights (last.npz, epoch "
          f"{history.epochs}); {_best_line(history, out)}")
    files = ["config.json", "last.npz", "best.npz", "history.csv", "history.jsonl",
             "metrics.json", *plots]
    print(f"files in {out}: " + ", ".join(f for f in files if (out / f).is_file()))
    return 0


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _epochs_done(out: Path) -> int:
    from cnnlab.train.checkpoint import load_checkpoint

    return int(load_checkpoint(out / "last.npz")["meta"]["epoch"])


def _best_line(history, out: Path) -> str:
    """Which epoch best.npz holds (the lowest dev loss, or training loss without a dev set)."""
    h = history.history
    key = "val_loss" if "val_loss" in h else "loss"
    if not h.get(key):
        return ""
    best = int(np.argmin(h[key])) + 1
    return (f"best.npz holds epoch {best} (lowest {key}); test it with "
            f"cnnlab evaluate --checkpoint {out / 'best.npz'}")


def _plots(out: Path, history, result) -> list:
    """Learning curves and the confusion matrix as PNG, when matplotlib is installed; returns
    the names of the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    h = history.history
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        epochs = []
        for name in (key, f"val_{key}"):
            if name in h:
                epochs = list(range(1, len(h[name]) + 1))
                ax.plot(epochs, h[name], marker="o", label=name)
        ax.set_xlabel("epoch")
        # one tick per epoch (at most ~10): epochs are whole numbers, even for a 1-epoch run
        step = max(1, -(-len(epochs) // 10))
        ax.set_xticks(epochs[::step])
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)
    cm = np.asarray(result["confusion_matrix"])
    k = len(cm)
    side = min(12.0, max(5.0, 0.6 * k))  # the figure grows with the classes, to a point
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm, cmap="Blues")
    dark = cm.max() / 2
    # counts as large as a cell allows (about a third of its height, 8 to 14 points)
    fontsize = max(8.0, min(14.0, 72 * side * 0.75 / max(k, 1) / 3))
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=fontsize,
                color="white" if v > dark else "black")
    ticks = np.arange(k)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    return ["learning_curves.png", "confusion_matrix.png"]
