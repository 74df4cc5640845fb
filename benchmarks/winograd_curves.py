"""ResNet-20 trained a few epochs with Winograd on and off: the same loss curve within noise?
Not a test (minutes).

    python benchmarks/winograd_curves.py [--train 5000] [--test 1000] [--epochs 3]
                                         [--mnist /work/shared/datasets/mnist]

CIFAR-shaped data (32x32x3, 10 classes) made from real images: MNIST digits (the IDX files in
--mnist; the embedded subset when none is given) zero-padded to 32x32, each copied into three
channels with a per-image random tint, so that the first layer sees colour. Runs of
``cnnlab.train.fit`` (SGD with momentum 0.9, lr 0.05, batch 64, float32), each from a fresh
model, for every seed in --seeds, twice: Winograd on (the default dispatch) and off
(kernels.use("banded", "window"): otherwise the same code). One seed gives both modes the same
initial weights and batch order, so they differ only by rounding (which grows over the steps).

Judged "the same within noise" when, at every epoch, the mean over seeds of the training loss
and of the test loss differ between on and off by no more than the seeds' own spread (the
largest |seed i - seed j| within either mode), or by under 2% of the loss.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cnnlab as cl
from cnnlab import kernels, models, optim
from cnnlab.data import mnist
from cnnlab.train import fit


def cifar_shaped(split: str, count: int, root, seed: int):
    """(x (count, 32, 32, 3) float32 in [0, 1], y) from MNIST digits, tinted per image."""
    data = mnist(split, root=root)
    x, y = data.x[:count], data.y[:count]
    x = x.astype(np.float32).reshape(len(x), 28, 28, 1)
    if x.max() > 1:
        x = x / 255.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))  # (count, 32, 32, 1)
    tint = np.random.default_rng(seed).uniform(0.3, 1.0, (len(x), 1, 1, 3)).astype(np.float32)
    return x * tint, np.asarray(y)


def train(data, val, seed: int, epochs: int, winograd: bool) -> dict:
    model = models.get("resnet20", num_classes=10, seed=seed)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    t0 = time.perf_counter()
    if winograd:
        history = fit(model, data, val, optimizer=opt, epochs=epochs, batch_size=64, seed=seed,
                      verbose=False)
    else:
        with kernels.use("banded", "window"):
            history = fit(model, data, val, optimizer=opt, epochs=epochs, batch_size=64,
                          seed=seed, verbose=False)
    out = dict(history.history)
    out["seconds"] = time.perf_counter() - t0
    return out


def seconds(history: dict) -> str:
    return f"{history['seconds']:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--mnist", default=None, help="folder of the MNIST IDX files")
    args = ap.parse_args()
    seeds = [int(v) for v in args.seeds.split(",")]
    data = cifar_shaped("train", args.train, args.mnist, 0)
    val = cifar_shaped("test", args.test, args.mnist, 1)
    runs = {(mode, seed): train(data, val, seed, args.epochs, mode == "on")
            for seed in seeds for mode in ("on", "off")}
    print(f"ResNet-20, {args.train} CIFAR-shaped training images, {args.test} test, "
          f"{args.epochs} epochs, seeds {seeds}; threads {cl.get_num_threads()}")
    print("| epoch | Winograd | seed | train loss | test loss | test accuracy | seconds |")
    print("|---|---|---|---|---|---|---|")
    for e in range(args.epochs):
        for (mode, seed), h in runs.items():
            print(f"| {e + 1} | {mode} | {seed} | {h['loss'][e]:.4f} | {h['val_loss'][e]:.4f} "
                  f"| {h['val_accuracy'][e]:.4f} | {seconds(h) if e == 0 else ''} |")
    same = True
    for key in ("loss", "val_loss"):
        for e in range(args.epochs):
            by_mode = {m: [runs[m, s][key][e] for s in seeds] for m in ("on", "off")}
            diff = abs(np.mean(by_mode["on"]) - np.mean(by_mode["off"]))
            spread = max(max(v) - min(v) for v in by_mode.values())
            ok = diff <= max(spread, 0.02 * np.mean(by_mode["off"]))
            same &= ok
            print(f"epoch {e + 1} {key}: |mean on - mean off| = {diff:.4f}, seeds' spread "
                  f"{spread:.4f}: {'within' if ok else 'OUTSIDE'}")
    print("verdict:", "the same curve within noise" if same else "NOT within noise")


if __name__ == "__main__":
    main()
