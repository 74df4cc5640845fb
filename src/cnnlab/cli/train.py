"""``cnnlab train``: data, model, optimizer, fit, test metrics, files — and resume."""

from __future__ import annotations

import contextlib
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
    model_from_checkpoint,
    parse_shape,
)
from cnnlab.cli.rundata import SHIFTED, arrays_of, run_splits

__all__ = ["run_training", "test_metrics", "split_metrics"]

DEFAULTS = {
    "model": "lenet5",
    "dataset": "mnist",
    "data_dir": None,
    "download": False,
    "epochs": 8,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": None,  # per optimizer, below
    "beta": None,  # the optimizer's own default (0.9)
    "schedule": "none",
    "l2": 0.0,
    "dropout": None,
    "augment": False,
    "val_fraction": 0.1,
    "seed": 0,
    "from_checkpoint": None,
    "freeze": None,
    "num_classes": None,
    "train_dev_fraction": 0.0,  # the course's training-dev set (issue 13)
    "dev_data": None,
    "test_data": None,
    "sync_bn": None,
    "input_shape": None,
}
_DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "rmsprop": 0.001,
               "adam": 0.001, "adamw": 0.001}
SCHEDULES = ("none", "step", "exponential", "inverse", "sqrt", "cosine")


def _settings(args) -> tuple[dict, Path, Path | None]:
    """The run's settings, its folder, and the checkpoint it resumes from (None: a new run)."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    if args.resume:
        from cnnlab.cli.config import compare_with_checkpoint, read_config
        from cnnlab.train.checkpoint import read_metadata

        out = Path(args.resume)
        config = out / "config.json"
        if not config.is_file():
            raise CLIError(f"--resume {out}: no config.json there (not a cnnlab train folder)")
        settings = read_config(config)
        checkpoint = _resume_checkpoint(out)
        changed = [k for k, v in given.items() if k != "epochs" and v is not False]
        if changed:  # silently training with other settings than the user typed would mislead
            flags = ", ".join("--" + ("from" if k == "from_checkpoint" else k.replace("_", "-"))
                              for k in changed)
            raise CLIError(f"--resume {out} continues the run with the settings in its "
                           f"config.json; only --epochs may change (received {flags})")
        meta = read_metadata(checkpoint)
        compare_with_checkpoint(settings, meta.get("extra", {}).get("settings"), config,
                                checkpoint)
        if "epochs" in given:  # the one setting a resumed run may change: train longer
            done = meta["epoch"]
            if given["epochs"] < done:
                raise CLIError(f"--resume {out} --epochs {given['epochs']}: the run has "
                               f"already done {done} epochs; ask for at least that many")
            settings["epochs"] = given["epochs"]
        return settings, out, checkpoint
    settings = {**DEFAULTS, **given}
    if settings["dev_data"] is not None:
        if given.get("val_fraction"):
            raise CLIError(f"--dev-data {settings['dev_data']} is the dev set: drop "
                           f"--val-fraction {given['val_fraction']} (it would cut a second one "
                           "from the training data); for a held-out slice of the training "
                           "distribution use --train-dev-fraction")
        settings["val_fraction"] = 0.0
    if settings["val_fraction"] + settings["train_dev_fraction"] >= 1:
        raise CLIError(f"--val-fraction {settings['val_fraction']} and --train-dev-fraction "
                       f"{settings['train_dev_fraction']} leave no training images")
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
    for key in ("dev_data", "test_data"):
        if settings[key] not in (None, SHIFTED):
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
    return settings, out, None


def _resume_checkpoint(out: Path) -> Path:
    """last.npz, or best.npz when a crash (or a user) left only that one."""
    if (out / "last.npz").is_file():
        return out / "last.npz"
    if (out / "best.npz").is_file():
        print(f"{out}: no last.npz; resuming from best.npz", file=sys.stderr)
        return out / "best.npz"
    raise CLIError(f"--resume {out}: no last.npz (or best.npz) checkpoint to continue from")


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


def _optimizer(name: str, params, lr: float, beta: float | None = None):
    from cnnlab import optim

    if name == "sgd":
        if beta is not None:
            raise CLIError("--beta: plain sgd has no beta; use --optimizer momentum, nesterov, "
                           "rmsprop, adam or adamw")
        return optim.SGD(params, lr=lr)
    b = 0.9 if beta is None else beta
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=b)
    if name == "nesterov":
        return optim.SGD(params, lr=lr, momentum=b, nesterov=True)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, beta=b)
    if name == "adam":
        return optim.Adam(params, lr=lr, beta1=b)
    return optim.AdamW(params, lr=lr, beta1=b)


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


def split_metrics(model, ds, name: str, result: dict | None = None) -> dict:
    """``{name}_accuracy``, ``_error``, ``_loss``, ``_f1`` (macro over the classes the split
    holds), ``_size`` of the model on ``ds`` in eval mode (``result``: test_metrics' output
    for ``ds``, when already computed)."""
    if result is None:
        from cnnlab.data import ArrayDataset

        result = test_metrics(model, ArrayDataset(*arrays_of(ds)))
    f1 = np.asarray(result["f1"], dtype=np.float64)
    present = np.asarray(result["support"]) > 0
    acc = result["test_accuracy"]
    return {f"{name}_accuracy": acc, f"{name}_error": 1.0 - acc,
            f"{name}_loss": result["test_loss"],
            f"{name}_f1": float(f1[present].mean()) if present.any() else 0.0,
            f"{name}_size": int(len(result["y_true"]))}


def run_training(args, callbacks=()) -> int:
    """``cnnlab train``; ``callbacks``: more fit callbacks (cnnlab tune reports each epoch)."""
    if getattr(args, "config", None):
        from cnnlab.cli.train_config import apply_config

        apply_config(args)
    # several processes (issue 18): `--processes N` starts mpiexec; inside it, see cli/mpi.py
    from cnnlab.train.distributed.world import launched_size

    if getattr(args, "processes", None) and launched_size() <= 1:
        from cnnlab.cli.mpi import launch

        return launch(args)
    from cnnlab.cli.mpi import mpi_world, run_agreed

    world = mpi_world(args)
    if world is None:
        return _run_training(args, None, callbacks)
    return run_agreed(world, lambda: _run_training(args, world, callbacks))


def _run_training(args, world, callbacks=()) -> int:
    if world is not None:
        from cnnlab.cli.mpi import share_out

        share_out(world, args, _settings)
    settings, out, resume_from = _settings(args)
    with contextlib.ExitStack() as cleanup:  # releases the folder's lock, however it ends
        return _train(args, world, settings, out, resume_from, cleanup, callbacks)


def _take_folder(out: Path, resuming: bool, verbose: bool):
    """Lock the run folder (one writer at a time; a second run is refused, exit 2), then
    clean what a killed run left there. Taken once the data and the model are ready, so that
    a run refused for a mistake leaves no folder behind."""
    from cnnlab.train.checkpoint import remove_stale_temporaries
    from cnnlab.train.lock import RunLock

    lock = RunLock(out).acquire()
    try:
        if not resuming and (out / "last.npz").exists():  # another run got here first
            raise CLIError(f"--out {out} already holds a run (last.npz); use --resume {out} "
                           "to continue it or choose another --out")
        removed = remove_stale_temporaries(out)  # left by a killed write; we own the folder
    except BaseException:
        lock.release()
        raise
    if lock.stale is not None and verbose:
        print(f"{out}: process {lock.stale} ended without releasing the folder's lock "
              "(killed?); taking it over")
    if removed and verbose:
        print(f"{out}: removed {len(removed)} temporary file(s) left by an interrupted write")
    return lock


def _train(args, world, settings: dict, out: Path, resume_from: Path | None, cleanup,
           more_callbacks=()) -> int:
    from cnnlab import train as tr

    root = world is None or world.is_root  # the process that writes and prints
    resuming = resume_from is not None
    verbose = not args.quiet and root
    s = settings
    folder = s["dataset"] == "folder"
    model = info = None
    if s["from_checkpoint"]:
        # a resumed fine-tuning run rebuilds its model from its own checkpoint (its head is
        # already the new one), so it does not need the source checkpoint any more
        model, info = model_from_checkpoint(resume_from or s["from_checkpoint"])
        if info["name"] != s["model"] and args.model is not None and not resuming:
            raise CLIError(f"--from {s['from_checkpoint']} holds a {info['name']!r} model, "
                           f"not {s['model']!r}")
        s["model"] = info["name"]
        if folder and s["input_shape"] is not None and not resuming:
            raise CLIError("--input-shape: with --from the images are brought to the shape the "
                           f"checkpoint's model takes, {tuple(info['input_shape'])}")
    # image folders are read at the size and channels the model takes, recorded in the
    # settings so that --resume and the commands that read a run (diagnose, errors) read the same
    if folder:
        if info is not None:
            wanted = tuple(info["input_shape"])
        elif s["input_shape"] is not None:
            wanted = tuple(s["input_shape"])
        else:
            wanted = _default_input_shape(s["model"])
        s["input_shape"] = list(wanted)
    splits = run_splits(s)
    full, test = splits["full"], splits["test"]
    train_ds, val_ds, train_dev = splits["train"], splits["dev"], splits["train_dev"]
    input_shape, classes = splits["input_shape"], splits["classes"]
    if info is not None and tuple(info["input_shape"]) != input_shape:
        raise CLIError(f"--from: the checkpoint's model takes {tuple(info['input_shape'])} "
                       f"images but dataset {s['dataset']!r} has {input_shape}")
    _check_classes(s, full, test)
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

    if world is not None and s.get("sync_bn"):
        from cnnlab.train.distributed import convert_sync_batchnorm

        convert_sync_batchnorm(model, world)
    optimizer = _optimizer(s["optimizer"], model.parameters(), s["lr"], s.get("beta"))
    callbacks = [
        tr.ModelCheckpoint(out, monitor="val_loss" if val_ds is not None else "loss"),
        tr.CSVLogger(out / "history.csv"),
        tr.JSONLogger(out / "history.jsonl"),
        *more_callbacks,
    ]
    schedule = _schedule(s["schedule"], s["lr"], s["epochs"])
    if schedule is not None:
        callbacks.append(tr.LRScheduler(schedule))
    description = {"name": s["model"], "num_classes": num_classes, "input_shape": input_shape,
                   "dropout": s["dropout"], "dataset": s["dataset"], "data_dir": s["data_dir"],
                   "classes": [str(c) for c in classes][:num_classes]}
    if world is not None:
        from cnnlab.cli.mpi import check_start

        check_start(world, s, model, train_ds, val_ds)
    if root:
        cleanup.callback(_take_folder(out, resuming, verbose).release)
        if not resuming:
            write_json(out / "config.json", s)
    if verbose:
        what = "resuming" if resuming else "training"
        held = "" if train_dev is None else f"{len(train_dev)} train-dev, "
        procs = "" if world is None else f" on {world.size} processes"
        print(f"{what} {s['model']} on {s['dataset']} ({len(train_ds)} train, {held}"
              f"{0 if val_ds is None else len(val_ds)} dev, {len(test)} test images){procs} "
              f"-> {out}")
    if resuming and _epochs_done(resume_from) >= s["epochs"]:
        print(f"the run in {out} has finished its {_epochs(s['epochs'])} (add --epochs N to "
              "train longer); evaluating its final weights again")
    start = time.perf_counter()
    if world is None:
        fit = tr.fit
    else:
        from functools import partial

        from cnnlab.train.distributed import fit as distributed_fit

        fit = partial(distributed_fit, world)
    try:
        history = fit(
            model, train_ds, val_ds, optimizer=optimizer, epochs=s["epochs"],
            batch_size=s["batch_size"], callbacks=callbacks, seed=s["seed"],
            transform=_augmentation(s["seed"]) if s["augment"] else None, l2=s["l2"],
            resume=resume_from, verbose=verbose,
            extra={"model": description, "settings": s},
            eval_sets=None if train_dev is None else {"train_dev": train_dev},
        )
    except tr.NonFiniteLossError as e:  # also NonFiniteStateError
        if root:
            print(f"cnnlab: error: {e}", file=sys.stderr)
        return 1
    if history.interrupted:
        if root:
            print(f"stopped; continue with: cnnlab train --resume {out}")
        return 130
    if not root:
        return 0
    seconds = time.perf_counter() - start
    result = test_metrics(model, test)
    report = {k: v for k, v in result.items() if k not in ("y_true", "y_pred")}
    report.update({"epochs": history.epochs, "model": s["model"], "dataset": s["dataset"],
                   "weights": "last.npz"})
    # the course's table of errors, one entry per split there is (cnnlab diagnose reads it)
    for name in ("train", "train_dev", "dev"):
        if splits[name] is not None:
            report.update(split_metrics(model, splits[name], name))
    report.update(split_metrics(model, test, "test", result))
    write_json(out / "metrics.json", report)  # deterministic: a resumed run writes the same
    _add_time(out / "timing.json", seconds)
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


def _add_time(path: Path, seconds: float) -> None:
    """timing.json: the run's training wall time, summed over its sessions (resumes)."""
    total = 0.0
    try:
        total = float(json.loads(path.read_text()).get("train_seconds", 0.0))
    except (OSError, ValueError, AttributeError, TypeError):
        total = 0.0
    write_json(path, {"train_seconds": total + seconds})


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _epochs_done(checkpoint: Path) -> int:
    from cnnlab.train.checkpoint import read_metadata

    return int(read_metadata(checkpoint)["epoch"])


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
        for name in (key, f"train_dev_{key}", f"val_{key}"):
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
