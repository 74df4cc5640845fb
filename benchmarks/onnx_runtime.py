"""cnnlab's nn.Predictor against onnxruntime on the same exported models. Not a test.

    python benchmarks/onnx_runtime.py [--rounds 7] [--threads 1] [--settle 0.2]

LeNet-5 (28x28x1) and ResNet-20 (32x32x3), random weights, eval mode; each model is exported
with cnnlab.onnx.export and the .onnx file run by onnxruntime (CPU provider, all graph
optimizations on). Batch 1 (latency) and batch 64 (throughput). Same thread count on both
sides: onnxruntime's intra-op threads, cnnlab's batch-chunk threads (cl.set_num_threads) and
NumPy's BLAS (threadpoolctl). Rounds alternate cnnlab / onnxruntime with a pause before each
side (--settle), best of a few calls per round, median of the rounds. Both sides get the same
input (NHWC for cnnlab, its NCHW transpose for onnxruntime; the transpose is outside the timing).
"ratio" = cnnlab time / onnxruntime time (lower is better for cnnlab; 1 means the same).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

import cnnlab as cl
import cnnlab.onnx
from cnnlab import models

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (its alternating-rounds timer, with the pause before each side)


def main() -> None:
    import onnxruntime as ort
    from threadpoolctl import threadpool_limits

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--settle", type=float, default=0.2)
    args = p.parse_args()
    run.SETTLE_S = args.settle
    cl.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    print(f"cnnlab {cl.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"median of {args.rounds} alternating rounds")
    print(f"{'model':<10} {'batch':>5} {'cnnlab ms':>10} {'ort ms':>8} {'ratio':>6}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(args.threads):
        for name in ("lenet5", "resnet20"):
            model = models.get(name, seed=0)
            model.eval()
            shape = tuple(model.input_shape)
            path = Path(tmp) / f"{name}.onnx"
            cnnlab.onnx.export(model, path, shape)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            predict = cl.nn.Predictor(model)
            for batch in (1, 64):
                x = rng.standard_normal((batch, *shape)).astype(np.float32)
                x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
                ours = predict(x)
                theirs = session.run(None, {"input": x_nchw})[0]
                err = np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max()
                assert err < 1e-4, f"{name}: the two sides disagree ({err:.1e})"
                repeat = 20 if batch == 1 else 3
                t = run._median_rounds({"cnnlab": lambda: predict(x),
                                    "ort": lambda: session.run(None, {"input": x_nchw})},
                                   args.rounds, repeat)
                print(f"{name:<10} {batch:>5} {t['cnnlab'] * 1e3:>10.3f} {t['ort'] * 1e3:>8.3f} "
                      f"{t['cnnlab'] / t['ort']:>6.2f}")


if __name__ == "__main__":
    main()
