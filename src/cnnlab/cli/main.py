"""The ``cnnlab`` command: train, evaluate, predict, summary, gradcheck.

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
    "cnnlab.cli.export",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own convention)
        # "cnnlab train: error: ..." would break the one-prefix rule; name the command after it
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"cnnlab: error: {command}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cnnlab", description="Train and use convolutional networks (NumPy only).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (default: LeNet-5 on the bundled MNIST subset)")
    t.add_argument("--model", default=None, help="a zoo model name (default lenet5)")
    t.add_argument("--dataset", default=None,
                   help="mnist, fashion_mnist, cifar10 or folder (default mnist)")
    t.add_argument("--data-dir", default=None,
                   help="folder with the dataset's files (mnist: default the bundled subset)")
    t.add_argument("--download", action="store_true",
                   help="fetch mnist/fashion_mnist into the cache when --data-dir is not given")
    t.add_argument("--epochs", type=_positive_int("--epochs"), default=None,
                   help="epochs (default 8)")
    t.add_argument("--batch-size", type=_positive_int("--batch-size"), default=None,
                   help="mini-batch size (default 64)")
    t.add_argument("--optimizer", default=None, help="sgd, momentum, nesterov, rmsprop, adam, "
                   "adamw (default adam)")
    t.add_argument("--lr", type=_nonnegative_float("--lr"), default=None,
                   help="learning rate (default 0.001 for adam/rmsprop, 0.01 for sgd)")
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
    t.add_argument("--seed", type=_nonnegative_int("--seed"), default=None,
                   help="random seed (default 0)")
    t.add_argument("--out", default=None, help="output folder (default runs/MODEL-DATASET[-N])")
    t.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its last checkpoint")
    t.add_argument("--from", dest="from_checkpoint", metavar="CHECKPOINT", default=None,
                   help="start from these weights (transfer learning)")
    t.add_argument("--freeze", metavar="PREFIX", action="append", default=None,
                   help="freeze parameters whose name starts with PREFIX (repeatable)")
    t.add_argument("--num-classes", type=_positive_int("--num-classes"), default=None,
                   help="classes of the new head (default: the dataset's)")
    t.add_argument("--quiet", action="store_true", help="no progress display")

    e = sub.add_parser("evaluate", help="test metrics, report and confusion matrix of a checkpoint")
    e.add_argument("--checkpoint", required=True, help="a .npz checkpoint written by train")
    e.add_argument("--dataset", default=None, help="default: the one it was trained on")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--split", default="test", help="train or test (default test)")

    pr = sub.add_parser("predict", help="class and probability for image files or a folder")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("paths", nargs="+", help="image files (PNG/JPEG) or folders")
    pr.add_argument("--top", type=_positive_int("--top"), default=1)

    s = sub.add_parser("summary", help="layer table: output shapes, parameters, MACs")
    s.add_argument("model", help="a zoo model name")
    s.add_argument("--input-shape", default=None, help="H,W,C (default: the model's)")
    s.add_argument("--num-classes", type=_positive_int("--num-classes"), default=None)

    g = sub.add_parser("gradcheck", help="finite-difference check of a model's gradients")
    g.add_argument("model", help="a zoo model name")
    g.add_argument("--input-shape", default=None, help="H,W,C (default: the model's)")
    g.add_argument("--num-classes", type=_positive_int("--num-classes"), default=None)
    g.add_argument("--max-elements", type=_positive_int("--max-elements"), default=20,
                   help="elements checked per parameter (random sample; default 20)")
    g.add_argument("--seed", type=_nonnegative_int("--seed"), default=0)

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
        print("cnnlab: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
