"""``cnnlab export``: a checkpoint written by ``cnnlab train`` as an ONNX file.

    cnnlab export --checkpoint runs/lenet5-mnist/best.npz lenet5.onnx

The graph takes NCHW images like every ONNX CNN (``--nhwc`` for cnnlab's channels-last) and
computes the model's eval-mode forward; see docs/ONNX.md.
"""

from __future__ import annotations

from cnnlab.cli.common import CLIError, int_at_least, user_errors

__all__ = ["register", "run"]


def register(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint's model as an ONNX file")
    p.add_argument("--checkpoint", required=True, help="a .npz checkpoint written by train")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--nhwc", action="store_true",
                   help="the graph takes channels-last (N, H, W, C) images instead of NCHW")
    p.add_argument("--opset", type=int_at_least(17), default=None,
                   help="ai.onnx opset to write (default 17)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlab.cli.loaders import model_from_checkpoint

    with user_errors():
        import cnnlab.onnx

        model, info = model_from_checkpoint(args.checkpoint)
        shape = tuple(info["input_shape"])
        try:
            cnnlab.onnx.export(model, args.output, shape,
                               input_layout="nhwc" if args.nhwc else "nchw",
                               opset=args.opset or cnnlab.onnx.OPSET)
        except (cnnlab.onnx.ONNXError, OSError) as e:
            raise CLIError(f"{args.output}: {e}") from None
    h, w, c = shape
    layout = f"(N, {h}, {w}, {c}) NHWC" if args.nhwc else f"(N, {c}, {h}, {w}) NCHW"
    print(f"wrote {args.output}: {info['name']} taking {layout} images")
    return 0
