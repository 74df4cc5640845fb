"""What compiled kernels would give: LeNet-5's two convolutions, forward, in C against cnnlab
and PyTorch, in one process. Not a test, and not part of cnnlab.

    python benchmarks/native/compare.py [--rounds 7] [--threads 2] [--settle 0.3]

Compiles benchmarks/native/conv.c with the C compiler (``$CC``, else ``cc``; -O3
-march=native) into a temporary directory, loads it with ctypes (which lets go of the GIL
during the call), checks its results against the nested-loop reference, and times the three
sides in alternating rounds as benchmarks/run.py does (median of the rounds, each the best of 3
calls after a pause). The C kernels get the batch in two halves on cnnlab's threads
(ops/parallel.py), as cnnlab's convolutions do; conv1's C side includes copying the input into
its padded buffer. docs/PERFORMANCE.md says why this was measured.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from cnnlab.ops.parallel import map_chunks
from cnnlab.reference.conv import conv_forward

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import run  # noqa: E402  (its timing helper)


def _build(directory: str) -> ctypes.CDLL:
    lib = Path(directory) / "conv.so"
    cmd = [os.environ.get("CC", "cc"), "-O3", "-march=native", "-shared", "-fPIC",
           str(HERE / "conv.c"), "-o", str(lib)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"compare.py: no C compiler ({cmd[0]}); set CC")
    except subprocess.CalledProcessError as e:
        sys.exit(f"compare.py: {' '.join(cmd)} failed:\n{e.stderr}")
    return ctypes.CDLL(str(lib))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settle", type=float, default=0.3)
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    cl.set_num_threads(args.threads)
    run.SETTLE_S = args.settle
    ptr = ctypes.POINTER(ctypes.c_float)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(args.threads):
        lib = _build(tmp)
        print(f"threads={args.threads}, rounds={args.rounds}, batch 128, float32, forward only")
        print(f"{'layer':<28}{'C (ms)':>9}{'cnnlab':>9}{'torch':>9}{'C/torch':>9}  C vs loops")
        for name, xs, ws, pad in (("LeNet-5 conv1 1->6 'same'", (128, 28, 28, 1), (5, 5, 1, 6), 2),
                                  ("LeNet-5 conv2 6->16", (128, 14, 14, 6), (5, 5, 6, 16), 0)):
            x = rng.standard_normal(xs, dtype=np.float32)
            w = rng.standard_normal(ws, dtype=np.float32) * np.float32(0.1)
            b = rng.standard_normal(ws[3], dtype=np.float32)
            n, h, wd, c_in = xs
            hp, wp = h + 2 * pad, wd + 2 * pad
            z = np.empty((n, hp - 4, wp - 4, ws[3]), np.float32)
            halves = [slice(0, n // 2), slice(n // 2, n)]
            args_c = [a.ctypes.data_as(ptr) for a in (x, w, b, z)]
            if c_in == 1:
                xp = np.zeros((n, hp, wp), np.float32)
                args_c[0] = xp.ctypes.data_as(ptr)

                def share(chunks, args_c=args_c, xp=xp, x=x, h=h, wd=wd, hp=hp, wp=wp):
                    for k in chunks:
                        xp[k, pad : pad + h, pad : pad + wd] = x[k, :, :, 0]
                        lib.conv_c1(*args_c, hp, wp, 5, 5, ws[3], k.start, k.stop)
            else:

                def share(chunks, args_c=args_c, h=h, wd=wd, c_in=c_in):
                    for k in chunks:
                        lib.conv16(*args_c, h, wd, c_in, 5, 5, k.start, k.stop)

            def native(share=share, halves=halves):
                map_chunks(share, halves)

            tx, tw, tb = cl.tensor(x), cl.tensor(w), cl.tensor(b)

            def ours(tx=tx, tw=tw, tb=tb, pad=pad):
                F.conv2d(tx, tw, tb, padding=pad)

            xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
            wt = torch.tensor(w.transpose(3, 2, 0, 1).copy())
            bt = torch.tensor(b)

            def theirs(xt=xt, wt=wt, bt=bt, pad=pad):
                with torch.no_grad():
                    torch.nn.functional.conv2d(xt, wt, bt, padding=pad)

            native()
            want, _ = conv_forward(x.astype(np.float64), w.astype(np.float64),
                                   b.astype(np.float64), 1, pad)
            err = float(np.abs(z - want).max() / np.abs(want).max())
            if not err < 1e-5:
                sys.exit(f"compare.py: the C kernel disagrees with the loops ({err:.1e})")
            t = run._median_rounds({"C": native, "cnnlab": ours, "torch": theirs},
                                   args.rounds, repeat=3)
            print(f"{name:<28}{t['C'] * 1e3:9.3f}{t['cnnlab'] * 1e3:9.3f}"
                  f"{t['torch'] * 1e3:9.3f}{t['C'] / t['torch']:9.2f}  rel err {err:.1e}")


if __name__ == "__main__":
    main()
