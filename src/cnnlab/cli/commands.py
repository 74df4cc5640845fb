"""What each ``cnnlab`` sub-command does. Library errors become one-line CLIErrors here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cnnlab.cli.common import CLIError, user_errors
from cnnlab.cli.loaders import (
    build_model,
    check_fits,
    load_dataset,
    model_from_checkpoint,
    parse_shape,
)

__all__ = ["cmd_train", "cmd_evaluate", "cmd_predict", "cmd_summary", "cmd_gradcheck"]


# ---------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from cnnlab.cli.train import run_training

    with user_errors():
        return run_training(args)


# ---------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from cnnlab import metrics
    from cnnlab.cli.train import test_metrics

    if args.split not in ("train", "test"):
        raise CLIError(f"--split must be 'train' or 'test'; received {args.split!r}")
    with user_errors():
        model, info = model_from_checkpoint(args.checkpoint)
        trained_on = info.get("dataset", "mnist")
        dataset = args.dataset or trained_on
        data_dir = args.data_dir
        if data_dir is None and dataset == trained_on:  # the data it was trained on
            data_dir = info.get("data_dir")
        source = "the bundled subset" if data_dir is None and dataset == "mnist" else data_dir
        print(f"evaluating {info['name']} on {dataset} {args.split} ({source})")
        ds = load_dataset(dataset, data_dir, args.split, input_shape=info["input_shape"])
        check_fits(info, ds, f"{dataset} ({source})")
        result = test_metrics(model, ds)
    classes = info.get("classes") or [str(i) for i in range(result["num_classes"])]
    print(metrics.classification_report(result["y_true"], result["y_pred"],
                                        class_names=classes))
    print("confusion matrix (rows: true class, columns: predicted):")
    print(np.array2string(np.asarray(result["confusion_matrix"]), max_line_width=200))
    print(f"{args.split}_accuracy={result['test_accuracy']:.4f} "
          f"{args.split}_loss={result['test_loss']:.4f} ({len(ds)} images)")
    return 0


# ---------------------------------------------------------------------------- predict
def _expand(paths) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file()))
        else:
            files.append(p)
    return files


def _mnist_like(info: dict) -> bool:
    """A model trained on MNIST's digits (28x28, one channel), or fine-tuned from one on them."""
    return info.get("dataset") == "mnist" and tuple(info["input_shape"]) == (28, 28, 1)


def cmd_predict(args) -> int:
    from cnnlab import nn
    from cnnlab.data.digits import is_light_background, mnist_style
    from cnnlab.data.images import load_image

    with user_errors():
        model, info = model_from_checkpoint(args.checkpoint)
    predict = nn.Predictor(model)  # every image is (1, h, w, c): traced once, then replayed
    h, w, c = info["input_shape"]
    classes = info.get("classes") or [str(i) for i in range(info["num_classes"])]
    digits = _mnist_like(info) and args.preprocess != "none"
    failed = 0
    ok = 0
    for path in _expand(args.paths):
        try:
            if digits:  # at its own size: the recipe crops and scales it
                image = load_image(path, size=None, grayscale=True)
                if args.preprocess == "mnist" or is_light_background(image):
                    image = mnist_style(image)
                else:  # already white on black, as MNIST's own images
                    image = load_image(path, size=(h, w), grayscale=True)
            else:
                image = load_image(path, size=(h, w), grayscale=(c == 1))
                if _mnist_like(info) and is_light_background(image):
                    print(f"cnnlab: warning: {path} is dark on a light background; MNIST "
                          "models expect white digits on black (drop --preprocess none)",
                          file=sys.stderr)
        except ImportError as e:
            raise CLIError(str(e)) from None
        except (OSError, ValueError) as e:
            failed += 1
            message = str(e)  # the library's messages start with the file's name already
            shown = message if message.startswith(str(path)) else f"{path}: {message}"
            print(f"cnnlab: skipped {shown}", file=sys.stderr)
            continue
        image = image.reshape(1, h, w, c).astype(np.float32)
        logits = predict(image)[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p)[: args.top]
        shown = ", ".join(f"{classes[k]} {p[k]:.3f}" for k in top)
        if ok == 0:
            more = f", ... (top {len(top)}, most likely first)" if len(top) > 1 else ""
            print(f"file\tclass probability{more}")
        print(f"{path}\t{shown}")
        ok += 1
    if ok == 0 and failed == 0:
        raise CLIError("predict: no image files found in " + ", ".join(args.paths))
    return 1 if failed else 0


# ---------------------------------------------------------------------------- summary
def cmd_summary(args) -> int:
    from cnnlab import nn

    shape = parse_shape(args.input_shape) if args.input_shape else None
    model = build_model(args.model, num_classes=args.num_classes, input_shape=shape)
    print(nn.summary(model))  # zoo models record their input shape
    return 0


# ---------------------------------------------------------------------------- gradcheck
def cmd_gradcheck(args) -> int:
    from cnnlab.gradcheck import gradcheck_model

    shape = parse_shape(args.input_shape) if args.input_shape else None
    model = build_model(args.model, num_classes=args.num_classes, input_shape=shape)
    shape = tuple(model.input_shape)  # the zoo's default when none was given
    model.astype(np.float64)
    model.eval()
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(2, *shape))
    k = int(args.num_classes or _num_classes(model, x))
    y = rng.integers(0, k, size=2)
    params = [(n, p.data.size) for n, p in model.named_parameters() if p.requires_grad]
    entries = sum(min(size, args.max_elements) for _, size in params)
    print(f"checking {len(params)} parameters of {args.model}, up to {args.max_elements} "
          f"randomly chosen entries of each (--max-elements; {entries} of "
          f"{sum(size for _, size in params)} entries, two forward passes per entry)")
    print(f"{'parameter':40s} {'rel. diff':>9s}  entries checked")
    done = [0]

    def report(name, rel, checked, size):  # one line per parameter as it finishes
        done[0] += 1
        print(f"{name:40s} {rel:9.3e}  {checked} of {size}  [{done[0]}/{len(params)}]",
              flush=True)

    result = gradcheck_model(model, x, y, max_elements=args.max_elements, seed=args.seed,
                             on_parameter=report)
    verdict = "ok" if result < 1e-7 else "FAILED (bar 1e-7)"
    print(f"worst relative difference {float(result):.3e}: {verdict}")
    return 0 if result < 1e-7 else 1


def _num_classes(model, x) -> int:
    from cnnlab.tensor import Tensor, no_grad

    with no_grad():
        return model(Tensor(x)).shape[-1]
