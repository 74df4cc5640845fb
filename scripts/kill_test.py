"""The long kill test of issue 19: SIGKILL a training run at many random moments, resume it
after every kill, and check that it ends bitwise identical to a run never interrupted.

    PYTHONPATH=src python scripts/kill_test.py --kills 60 --seed 0

The run is tests/train/train_script.py (a small CNN with dropout, Adam and augmentation, a
checkpoint after every epoch); the short version is tests/train/test_kill.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.train

from tests.train import test_kill as K  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=8, help="epochs of the run")
    args = p.parse_args(argv)
    K.EPOCHS = args.epochs
    tmp = Path(tempfile.mkdtemp(prefix="cnnlab-kill-"))
    ref = K._start(tmp, "ref")
    K._finish(ref, tmp, "ref")
    rng = np.random.default_rng(args.seed)
    delays = rng.uniform(0.3, 2.5, size=args.kills)
    kills, in_write = K._run_to_the_end_with_kills(tmp, "run", delays)
    leftovers = [q.name for q in (tmp / "run" / "ck").iterdir() if q.name.endswith(".tmp")]
    with np.load(tmp / "ref" / "final.npz") as a, np.load(tmp / "run" / "final.npz") as b:
        same = a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    print(f"kills: {kills} (with a temporary file on disk: {in_write}), resumed after each: "
          f"{kills}, final weights bitwise equal to the uninterrupted run: {same}, "
          f"temporary files left: {len(leftovers)}")
    return 0 if same and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
