"""The importer's operators against onnxruntime on generated settings (hypothesis):
Conv (groups, dilations, strides, asymmetric pads, auto_pad), MaxPool / AveragePool / LpPool
(pads, ceil_mode, count_include_pad, auto_pad), with weights as initializers (so cnnlab's
layers run) and channels-last input; and gradients of the ONNX-only layers by finite
differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab.onnx._layers import LRN, Clip, Pool2D
from tests.onnx.conftest import run_ort

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _model(onnx, node, x_shape, inits=()):
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x_shape))
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = h.make_graph([node], "g", [x], [y], initializer=list(inits))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model = onnx.shape_inference.infer_shapes(model)
    return model


def _compare(onnx, ort, tmp_path, model, x_nchw):
    import cnnlab.onnx

    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    (want,) = run_ort(ort, path, x_nchw)
    with cl.no_grad():
        got = cnnlab.onnx.load(path)(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got.numpy().transpose(0, 3, 1, 2), want, rtol=1e-5, atol=1e-5)


@st.composite
def conv_settings(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    # onnxruntime refuses dilation with SAME_UPPER / SAME_LOWER
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if "SAME" not in mode else (1, 1)
    pads = [draw(st.integers(0, 2)) for _ in range(4)] if mode == "NOTSET" else None
    hw = (draw(st.integers(5, 9)), draw(st.integers(5, 9)))
    bias = draw(st.booleans())
    return groups, cin, cout, k, d, s, mode, pads, hw, bias


@SETTINGS
@given(conv_settings(), st.integers(0, 2**16))
def test_conv_matches_onnxruntime(onnx, ort, tmp_path, cfg, seed):
    groups, cin, cout, k, d, s, mode, pads, hw, bias = cfg
    rng = np.random.default_rng(seed)
    nh = onnx.numpy_helper
    w = rng.standard_normal((cout, cin // groups, *k)).astype(np.float32)
    inits = [nh.from_array(w, "w")] + ([nh.from_array(
        rng.standard_normal(cout).astype(np.float32), "b")] if bias else [])
    attrs = {"group": groups, "dilations": list(d), "strides": list(s), "auto_pad": mode}
    if pads is not None:
        attrs["pads"] = pads
    node = onnx.helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], **attrs)
    x = rng.standard_normal((2, cin, *hw)).astype(np.float32)
    _compare(onnx, ort, tmp_path, _model(onnx, node, x.shape, inits), x)


@st.composite
def pool_settings(draw):
    op = draw(st.sampled_from(["MaxPool", "AveragePool", "LpPool"]))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER",
                                 "VALID"]))
    if "SAME" in mode:  # onnxruntime computes a negative padding when the stride passes k
        s = (min(s[0], k[0]), min(s[1], k[1]))
    attrs = {"kernel_shape": list(k), "strides": list(s), "auto_pad": mode}
    if mode == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, k[i % 2] - 1)) for i in range(4)]
        if op != "LpPool":
            attrs["ceil_mode"] = int(draw(st.booleans()))
    if op == "AveragePool":
        attrs["count_include_pad"] = int(draw(st.booleans()))
    if op == "LpPool":
        attrs["p"] = draw(st.sampled_from([1, 2, 3]))
    hw = (draw(st.integers(4, 9)), draw(st.integers(4, 9)))
    return op, attrs, hw


@SETTINGS
@given(pool_settings(), st.integers(0, 2**16))
def test_pooling_matches_onnxruntime(onnx, ort, tmp_path, cfg, seed):
    op, attrs, hw = cfg
    rng = np.random.default_rng(seed)
    node = onnx.helper.make_node(op, ["x"], ["y"], **attrs)
    x = rng.standard_normal((2, 3, *hw)).astype(np.float32)
    _compare(onnx, ort, tmp_path, _model(onnx, node, x.shape), x)


def test_lrn_and_clip_match_onnxruntime(onnx, ort, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 4, 5)).astype(np.float32)
    for size in (1, 3, 5):  # onnxruntime takes odd sizes only
        node = onnx.helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.3, beta=0.6,
                                     bias=1.5)
        _compare(onnx, ort, tmp_path, _model(onnx, node, x.shape), x)
    nh = onnx.numpy_helper
    inits = [nh.from_array(np.float32(-0.5), "lo"), nh.from_array(np.float32(0.7), "hi")]
    node = onnx.helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
    _compare(onnx, ort, tmp_path, _model(onnx, node, x.shape, inits), x)


@pytest.mark.parametrize("layer", [
    Clip(-0.3, 0.4),
    LRN(3, 0.5, 0.75, 1.0),
    Pool2D("AveragePool", (3, 2), (2, 1), ((1, 0), (0, 1)), "NOTSET", True, True),
    Pool2D("AveragePool", (2, 2), (2, 2), ((0, 0), (0, 0)), "SAME_LOWER", False, False),
    Pool2D("MaxPool", (3, 3), (2, 2), ((1, 2), (0, 1)), "NOTSET", True),
    Pool2D("LpPool", (2, 2), (1, 1), ((1, 0), (0, 1)), "NOTSET", False, p=3),
], ids=["clip", "lrn", "avg-ceil-include", "avg-same-lower", "max-ceil", "lp3-padded"])
def test_onnx_layers_gradcheck(layer):
    rng = np.random.default_rng(1)
    x = cl.tensor(rng.standard_normal((2, 5, 6, 3)) + 0.05, requires_grad=True)
    w = rng.standard_normal(tuple(layer(x).shape))
    assert cl.gradcheck(lambda t: (layer(t) * cl.tensor(w)).sum(), [x]) < 1e-7


def test_doctests_of_the_onnx_modules():
    import doctest

    from cnnlab.onnx import _layers, _layout

    for module in (_layers, _layout):
        assert doctest.testmod(module).failed == 0


def test_layout_sensitive_operators_after_a_convolution(onnx, ort, tmp_path):
    """Operators with an axis or a broadcast on images held channels-last inside cnnlab:
    Softmax(axis=1), Add of a (C, 1, 1) constant, Concat on channels with a constant, Pad,
    Slice, Transpose, ReduceMean without keepdims, LeakyRelu, Flatten, Gemm."""
    h, nh = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(2)
    f32 = np.float32
    inits = [
        nh.from_array(rng.standard_normal((4, 3, 3, 3)).astype(f32), "w"),
        nh.from_array(rng.standard_normal((4, 1, 1)).astype(f32), "shift"),
        nh.from_array(rng.standard_normal((1, 2, 6, 6)).astype(f32), "extra"),
        nh.from_array(np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64), "pads"),
        nh.from_array(np.array([1, 0], np.int64), "starts"),
        nh.from_array(np.array([5, 4], np.int64), "ends"),
        nh.from_array(np.array([2, 3], np.int64), "axes"),
        nh.from_array(rng.standard_normal((6, 3)).astype(f32), "fc"),
    ]
    nodes = [
        h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        h.make_node("Softmax", ["c"], ["s"], axis=1),
        h.make_node("Add", ["s", "shift"], ["a"]),
        h.make_node("Concat", ["a", "extra"], ["k"], axis=1),
        h.make_node("Pad", ["k", "pads"], ["p"]),
        h.make_node("Slice", ["p", "starts", "ends", "axes"], ["sl"]),
        h.make_node("Transpose", ["sl"], ["t"], perm=[0, 2, 1, 3]),
        h.make_node("LeakyRelu", ["t"], ["lr"], alpha=0.3),
        h.make_node("ReduceMean", ["lr"], ["m"], axes=[1, 3], keepdims=0),
        h.make_node("Flatten", ["m"], ["fl"]),
        h.make_node("Gemm", ["fl", "fc"], ["y"]),
    ]
    f = onnx.TensorProto.FLOAT
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", f, [1, 3, 6, 6])],
                         [h.make_tensor_value_info("y", f, [1, 3])], initializer=inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    x = rng.standard_normal((1, 3, 6, 6)).astype(f32)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    (want,) = run_ort(ort, path, x)
    import cnnlab.onnx

    with cl.no_grad():
        got = cnnlab.onnx.load(path)(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", ["gemm", "gemm-transB", "gemm-alpha", "matmul", "reshape"])
def test_flatten_into_a_classifier_permutes_its_weights(head, onnx, ort, tmp_path):
    """Conv -> Flatten (C, H, W order in ONNX) -> Gemm/MatMul: cnnlab flattens its (H, W, C)
    image and takes the classifier's rows in that order, once, at import."""
    import cnnlab.onnx

    h, nh = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(3)
    f32 = np.float32
    w = rng.standard_normal((4, 2, 3, 3)).astype(f32)
    fc = rng.standard_normal((4 * 3 * 5, 6)).astype(f32)
    fc = fc.T.copy() if head == "gemm-transB" else fc
    inits = [nh.from_array(w, "w"), nh.from_array(fc, "fc"),
             nh.from_array(np.array([0, -1], np.int64), "shape")]
    flat = (h.make_node("Reshape", ["c", "shape"], ["fl"]) if head == "reshape"
            else h.make_node("Flatten", ["c"], ["fl"]))
    if head == "matmul":
        last = h.make_node("MatMul", ["fl", "fc"], ["y"])
    else:
        last = h.make_node("Gemm", ["fl", "fc"], ["y"], transB=int(head == "gemm-transB"),
                           alpha=0.5 if head == "gemm-alpha" else 1.0)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), flat, last]
    f = onnx.TensorProto.FLOAT
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", f, [2, 2, 5, 7])],
                         [h.make_tensor_value_info("y", f, [2, 6])], initializer=inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    x = rng.standard_normal((2, 2, 5, 7)).astype(f32)
    onnx.save(model, str(tmp_path / "m.onnx"))
    (want,) = run_ort(ort, tmp_path / "m.onnx", x)
    net = cnnlab.onnx.load(tmp_path / "m.onnx")
    with cl.no_grad():
        got = net(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert [s.op for s in net._steps if s.op == "layout"] == []


def test_matmul_then_add_becomes_one_dense_layer_with_a_trainable_bias(onnx, ort, tmp_path):
    """TensorFlow's exporters write a dense layer as MatMul + Add."""
    import cnnlab.onnx

    h, nh = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(4)
    w = rng.standard_normal((6, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    f = onnx.TensorProto.FLOAT
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"], name="dense/MatMul"),
             h.make_node("Add", ["m", "b"], ["y"], name="dense/BiasAdd")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", f, [4, 6])],
                         [h.make_tensor_value_info("y", f, [4, 3])],
                         initializer=[nh.from_array(w, "w"), nh.from_array(bias, "b")])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]),
              str(tmp_path / "m.onnx"))
    x = rng.standard_normal((4, 6)).astype(np.float32)
    (want,) = run_ort(ort, tmp_path / "m.onnx", x)
    net = cnnlab.onnx.load(tmp_path / "m.onnx")
    with cl.no_grad():
        np.testing.assert_allclose(net(x).numpy(), want, rtol=1e-6, atol=1e-6)
    assert {n: tuple(p.shape) for n, p in net.named_parameters()} == {
        "dense.weight": (6, 3), "dense.bias": (3,)}
