"""The ``cnnlab`` command: train, evaluate, predict, summary, gradcheck, and the commands
registered from their own modules (diagnose, errors, compare, report, ...).

A mistake on the command line (an unknown model, a missing file, a nonsensical number) prints one
line ``cnnlab: error: ...`` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cnnlab.cli.common import (
    CLIError,
    fraction,
    nonnegative_float,
    nonnegative_int,
    positive_int,
)

__all__ = ["CLIError", "build_parser", "main"]


# the argparse types under the names this module has always used
_positive_int, _nonnegative_int = positive_int, nonnegative_int
_nonnegative_float, _fraction = nonnegative_float, fraction


# Modules that register a command of their own (see build_parser); one line each.
_COMMAND_MODULES: list[str] = [
    "cnnlab.cli.diagnose",
    "cnnlab.cli.errors",
    "cnnlab.cli.compare",
    "cnnlab.cli.report",
    "cnnlab.cli.tune",
    "cnnlab.cli.export",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own convention)
        # "cnnlab train: error: ..." would break the one-prefix rule; name the command after it
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"cnnlab: error: {command}{message}\n")


def _zoo_model_arguments(p, models: str, classes_default: str) -> None:
    """A zoo model by name, with its --input-shape and --num-classes (summary, gradcheck)."""
    p.add_argument("model", help=f"a zoo model: {models}")
    p.add_argument("--input-shape", default=None, metavar="H,W,C",
                   help="one input's height, width, channels (default: the model's)")
    p.add_argument("--num-classes", type=_positive_int("--num-classes"), default=None,
                   help=f"outputs of the head ({classes_default})")


def build_parser() -> argparse.ArgumentParser:
    from cnnlab import __version__
    from cnnlab.cli.loaders import FOLDER_LAYOUT
    from cnnlab.models import names

    models = ", ".join(names())
    p = _Parser(prog="cnnlab", description="Train and use convolutional networks (NumPy only).")
    p.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser(
        "train", help="train a model (default: LeNet-5 on the bundled MNIST subset)",
        description="Train a zoo model and write checkpoints, history and test metrics to a "
        f"run folder. Your own images: --data-dir DIR with the layout {FOLDER_LAYOUT}.")
    t.add_argument("--model", default=None, metavar="NAME",
                   help=f"a zoo model (default lenet5): {models}")
    t.add_argument("--dataset", default=None,
                   help="mnist, fashion_mnist, cifar10 or folder (default mnist; folder when "
                   "--data-dir holds train/ and test/ folders)")
    t.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the dataset's files: mnist/fashion_mnist the four IDX files "
                   "(mnist default: the bundled subset), cifar10 the binary batches, folder "
                   f"{FOLDER_LAYOUT}")
    t.add_argument("--download", action="store_true",
                   help="fetch mnist/fashion_mnist first (into --data-dir DIR, or the cache)")
    t.add_argument("--epochs", type=_positive_int("--epochs"), default=None,
                   help="epochs (default 8)")
    t.add_argument("--batch-size", type=_positive_int("--batch-size"), default=None,
                   help="mini-batch size (default 64)")
    t.add_argument("--optimizer", default=None, help="sgd, momentum, nesterov, rmsprop, adam, "
                   "adamw (default adam)")
    t.add_argument("--lr", type=_nonnegative_float("--lr"), default=None,
                   help="learning rate (default 0.001 for adam/rmsprop, 0.01 for sgd)")
    t.add_argument("--beta", type=_fraction("--beta"), default=None,
                   help="momentum's beta (momentum, nesterov), RMSprop's beta, Adam's beta1 "
                   "(default 0.9)")
    t.add_argument("--schedule", default=None,
                   help="learning-rate schedule: none, step, exponential, inverse, sqrt, cosine")
    t.add_argument("--l2", type=_nonnegative_float("--l2"), default=None,
                   help="L2 regularization lambda (weights only)")
    t.add_argument("--dropout", type=_fraction("--dropout"), default=None,
                   help="dropout rate before the classifier's dense layers (models that have one)")
    t.add_argument("--augment", action="store_true", default=None,
                   help="random shifts, small rotations and zooms (LeCun et al.'s distortions)")
    t.add_argument("--val-fraction", type=_fraction("--val-fraction"), default=None,
                   help="fraction of the training set held out as a dev set (default 0.1)")
    t.add_argument("--train-dev-fraction", type=_fraction("--train-dev-fraction"), default=None,
                   help="fraction of the training data held out as a training-dev set (same "
                   "distribution, never trained on, evaluated every epoch; default 0)")
    t.add_argument("--dev-data", metavar="DIR", default=None,
                   help="dev set from another source: a folder (IDX files, or a subfolder of "
                   "images per class) or mnist-shifted (blurry, low-resolution digits)")
    t.add_argument("--test-data", metavar="DIR", default=None,
                   help="test set from another source, as --dev-data")
    t.add_argument("--seed", type=_nonnegative_int("--seed"), default=None,
                   help="seed of everything random: initial weights, dev split, batch order, "
                   "augmentation, dropout (default 0; the same seed gives the same run)")
    t.add_argument("--out", default=None, help="output folder (default runs/MODEL-DATASET[-N])")
    t.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its last checkpoint")
    t.add_argument("--from", dest="from_checkpoint", metavar="CHECKPOINT", default=None,
                   help="start from these weights (transfer learning)")
    t.add_argument("--freeze", metavar="PREFIX", action="append", default=None,
                   help="freeze parameters whose name starts with PREFIX (repeatable)")
    t.add_argument("--num-classes", type=_positive_int("--num-classes"), default=None,
                   help="classes of the model's output layer (default: the dataset's); with "
                   "--from, a new head is made when it differs from the checkpoint's")
    t.add_argument("--input-shape", default=None, metavar="H,W,C",
                   help="folder datasets: the size and channels (1 grayscale, 3 RGB) images "
                   "are brought to (default: the model's, e.g. 28,28,1 for lenet5; with --from: "
                   "the checkpoint's)")
    t.add_argument("--quiet", action="store_true", help="no progress display")
    # data-parallel training on MPI (issue 18): `mpiexec -n N cnnlab train ...` or --processes
    t.add_argument("--processes", type=_positive_int("--processes"), default=None,
                   help="train on N processes of this machine (runs mpiexec; needs the mpi "
                   "extra); on several machines run mpiexec -n N --hostfile FILE cnnlab train")
    t.add_argument("--sync-bn", action="store_true", default=None,
                   help="with several processes: batch-norm statistics of the global batch "
                   "(default: each process normalises its share with its own)")
    t.add_argument("--mpi-timeout", type=_nonnegative_float("--mpi-timeout"), default=None,
                   metavar="SECONDS", help="with several processes: stop every process when "
                   "one gives no answer for this long (default 120)")
    t.add_argument("--config", metavar="FILE", default=None,
                   help="a JSON object of train options (e.g. cnnlab tune's best.json); "
                   "flags given on the command line win")

    e = sub.add_parser("evaluate", help="test metrics, report and confusion matrix of a checkpoint")
    e.add_argument("--checkpoint", required=True, metavar="FILE",
                   help="a .npz checkpoint written by cnnlab train (e.g. runs/NAME/best.npz)")
    e.add_argument("--dataset", default=None,
                   help="mnist, fashion_mnist, cifar10 or folder (default: the one it was "
                   "trained on)")
    e.add_argument("--data-dir", default=None, metavar="DIR",
                   help="the dataset's folder (default: the one recorded in the checkpoint when "
                   "--dataset is the one it was trained on; mnist: the bundled subset)")
    e.add_argument("--split", default="test", help="train or test (default test)")

    pr = sub.add_parser(
        "predict", help="class and probability for image files or a folder",
        description="Print one line per image: the file, then the most likely classes with "
        "their probabilities. For a model trained on MNIST, a digit drawn dark on light is "
        "first brought to MNIST's convention (inverted, cropped, scaled into 20x20 keeping its "
        "aspect, centred by mass in 28x28), as the dataset's images were made.")
    pr.add_argument("--checkpoint", required=True, metavar="FILE",
                    help="a .npz checkpoint written by cnnlab train (e.g. runs/NAME/best.npz)")
    pr.add_argument("paths", nargs="+", help="image files (PNG/JPEG) or folders")
    pr.add_argument("--top", type=_positive_int("--top"), default=1, metavar="K",
                    help="show the K most likely classes (default 1)")
    pr.add_argument("--preprocess", choices=("auto", "mnist", "none"), default="auto",
                    help="MNIST models only: auto (default) brings dark-on-light pictures to "
                    "MNIST's convention and uses white-on-black ones as they are; mnist does "
                    "it for every picture; none never does (a warning names dark-on-light ones)")

    s = sub.add_parser(
        "summary", help="layer table: output shapes, parameters, MACs",
        description="One row per layer: output shape, parameters, multiply-accumulates, and "
        "RF (receptive field: the input pixels one output position sees, per side) and Jump "
        "(the input pixels between neighbouring output positions: the product of the strides "
        "so far).")
    _zoo_model_arguments(s, models, "default: the model's, e.g. 10 for lenet5")

    g = sub.add_parser(
        "gradcheck", help="finite-difference check of a model's gradients",
        description="Compare backpropagation's gradient with central finite differences "
        "(float64) for every parameter: a random sample of --max-elements entries of each, "
        "two forward passes per entry; one line per parameter as it finishes.")
    _zoo_model_arguments(g, models, "default: the model's")
    g.add_argument("--max-elements", type=_positive_int("--max-elements"), default=20,
                   metavar="N", help="entries checked per parameter (random sample; default 20)")
    g.add_argument("--seed", type=_nonnegative_int("--seed"), default=0,
                   help="seed of the random input, labels and sample of entries (default 0)")

    # Further commands live in their own modules: each has ``register(sub)``, which adds its
    # parser and sets ``func`` (called with the parsed arguments, returns the exit status).
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from cnnlab.cli import commands

    try:
        func = getattr(args, "func", None) or getattr(commands, f"cmd_{args.command}")
        return func(args)
    except CLIError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a newline first: Ctrl-C usually lands in the middle of a progress line
        sys.stdout.flush()
        print("\ncnnlab: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
