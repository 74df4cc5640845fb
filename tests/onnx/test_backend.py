"""cnnlab.onnx.backend's Backend interface (prepare, run_model, run_node, supports_device),
checked against ONNX's reference evaluator (onnx.reference, written by ONNX's authors)."""

from __future__ import annotations

import numpy as np
import pytest


def test_supports_cpu_only(onnx):
    import cnnlab.onnx.backend as backend

    assert backend.supports_device("CPU")
    assert not backend.supports_device("CUDA")
    with pytest.raises(ValueError, match="device must be 'CPU'; received 'CUDA'"):
        backend.prepare(onnx.ModelProto(), "CUDA")


def test_run_node_matches_the_reference_evaluator(onnx):
    from onnx.reference import ReferenceEvaluator

    import cnnlab.onnx.backend as backend

    h = onnx.helper
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    node = h.make_node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 1], pads=[1, 0, 2, 1])
    (got,) = backend.run_node(node, [x, w])
    graph = h.make_graph([node], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape),
                          h.make_tensor_value_info("w", onnx.TensorProto.FLOAT, w.shape)],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    (want,) = ReferenceEvaluator(model).run(None, {"x": x, "w": w})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_run_model_and_prepare_in_onnx_layout(onnx, tmp_path):
    """NCHW in, NCHW out; a 2-input graph fed by a list and by a dict."""
    from onnx.reference import ReferenceEvaluator

    import cnnlab.onnx.backend as backend

    h = onnx.helper
    nodes = [h.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Mul", ["p", "b"], ["m"]),
             h.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
             h.make_node("Softmax", ["t"], ["y"], axis=1)]
    f = onnx.TensorProto.FLOAT
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("a", f, [2, 3, 4, 6]),
                                      h.make_tensor_value_info("b", f, [2, 3, 2, 3])],
                         [h.make_tensor_value_info("y", f, [2, 2, 3, 3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    b = rng.standard_normal((2, 3, 2, 3)).astype(np.float32)
    (want,) = ReferenceEvaluator(model).run(None, {"a": a, "b": b})
    (got,) = backend.run_model(model, [a, b])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    rep = backend.prepare(model)
    (again,) = rep.run({"a": a, "b": b})
    assert np.array_equal(again, got)
