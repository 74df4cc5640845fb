"""A training run for test_kill.py, run as a subprocess: ``python -m tests.train.train_script``.

Trains a small CNN with dropout, Adam and augmentation on synthetic images, saving a checkpoint
after every epoch in ``--dir``; ``--resume`` continues from ``--dir``. Each training step
appends a line to ``--steps`` (so the test knows where the run is), and the final weights are
written to ``--out`` (an .npz of the state dict) when the run ends.
"""

from __future__ import annotations

import argparse

import numpy as np

from cnnlab import functional as F
from cnnlab import optim
from cnnlab.data.transforms import RandomShift
from cnnlab.train import ModelCheckpoint, fit
from cnnlab.train.checkpoint import remove_stale_temporaries
from tests.train.helpers import bars, small_cnn

# An epoch of N / BATCH = 25 steps takes roughly 0.5 s on one core.
N, BATCH, SIZE, CHANNELS = 3200, 128, 28, 16
STEPS_PER_EPOCH = N // BATCH


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--model-seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = bars(N, size=SIZE, seed=0)
    model = small_cnn(seed=args.model_seed, dropout=0.5, size=SIZE, channels=CHANNELS)
    opt = optim.Adam(model.parameters(), lr=0.005)

    if args.resume:  # what a killed checkpoint write left (this process owns the folder)
        remove_stale_temporaries(args.dir)
    with open(args.steps, "a") as log:

        def loss(logits, target):
            log.write("step\n")
            log.flush()
            return F.cross_entropy(logits, target)

        fit(
            model,
            (x, y),
            loss=loss,
            optimizer=opt,
            epochs=args.epochs,
            batch_size=BATCH,
            seed=7,
            transform=RandomShift(2, seed=3),
            callbacks=[ModelCheckpoint(args.dir, monitor="loss")],
            resume=args.dir if args.resume else None,
            verbose=False,
        )
    np.savez(args.out, **model.state_dict())


if __name__ == "__main__":
    main()
