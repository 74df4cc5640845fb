"""Run by the distributed tests under mpiexec (and, with --single, in one process): train a
small CNN for a few steps and save its final weights, so the test can compare runs.

    mpiexec -n 2 python worker.py OUT.npz [--batch-norm] [--sync-bn] [--dropout R] [--l2 L]
    python worker.py OUT.npz --single ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: tests.*

from cnnlab import optim  # noqa: E402
from cnnlab.train import fit  # noqa: E402
from tests.train.helpers import bars, small_cnn  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--single", action="store_true")
    p.add_argument("--images", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--optimizer", default="momentum")
    p.add_argument("--batch-norm", action="store_true")
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--clip-norm", type=float, default=None)
    a = p.parse_args()
    x, y = bars(a.images, seed=3)
    model = small_cnn(seed=1, dropout=a.dropout, batch_norm=a.batch_norm)
    if a.optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    kw = dict(optimizer=opt, batch_size=a.batch_size, epochs=a.epochs, seed=5, l2=a.l2,
              clip_norm=a.clip_norm, verbose=False)
    if a.single:
        history = fit(model, (x, y), **kw)
        rank = 0
    else:
        from cnnlab.train import distributed

        world = distributed.init_world(timeout=60)
        if a.sync_bn:
            distributed.convert_sync_batchnorm(model, world)
        history = distributed.fit(world, model, (x, y), **kw)
        rank = world.rank
    if rank == 0:
        arrays = {k: np.asarray(v) for k, v in model.state_dict().items()}
        arrays["history/loss"] = np.asarray(history.history["loss"])
        np.savez(a.out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
