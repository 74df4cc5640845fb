"""Bad ONNX files: each gives one ONNXError line naming the file and the problem; nothing in
a file is executed."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import nn


def _tiny(onnx, op="Relu", opset=17, **attrs):
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])
    graph = h.make_graph([h.make_node(op, ["x"], ["y"], **attrs)], "g", [x], [y])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


@pytest.fixture
def good(tmp_path, onnx):
    import cnnlab.onnx

    model = nn.Sequential(nn.Conv2D(1, 2, 3, seed=0), nn.ReLU(), nn.Flatten(),
                          nn.Dense(8, 2, seed=1))
    path = tmp_path / "good.onnx"
    cnnlab.onnx.export(model, path, (4, 4, 1))
    return path


def test_not_an_onnx_file(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n" * 20)
    with pytest.raises(ONNXError, match=r"^\S*notes\.onnx: not an ONNX model"):
        load(path)


def test_empty_and_missing_files(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ONNXError, match=r"empty\.onnx: the file is empty, not an ONNX model"):
        load(tmp_path / "empty.onnx")
    with pytest.raises(ONNXError, match=r"nothere\.onnx: cannot read the file"):
        load(tmp_path / "nothere.onnx")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_file(good, keep, onnx):
    from cnnlab.onnx import ONNXError, load

    data = good.read_bytes()
    good.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ONNXError, match=r"good\.onnx: (not an ONNX model or truncated|not a "
                                        r"valid ONNX model|the shapes do not infer)") as e:
        load(good)
    assert "\n" not in str(e.value)


def test_unsupported_opset(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    path = tmp_path / "old.onnx"
    onnx.save(_tiny(onnx, opset=6), str(path))
    with pytest.raises(ONNXError, match=r"old\.onnx: unsupported opset 6 \(cnnlab reads ai\.onnx "
                                        r"opsets 7 to \d+\)"):
        load(path)


def test_other_domains_are_refused(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    model = _tiny(onnx)
    model.graph.node[0].domain = "com.microsoft"
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(tmp_path / "ms.onnx"))
    with pytest.raises(ONNXError, match=r"ms\.onnx: operators from domain\(s\) "
                                        r"\['com\.microsoft'\] are not supported"):
        load(tmp_path / "ms.onnx")


def test_every_unsupported_operator_is_listed_at_once(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])
    nodes = [h.make_node("Relu", ["x"], ["a"]), h.make_node("Erf", ["a"], ["b"]),
             h.make_node("Elu", ["b"], ["c"]), h.make_node("Erf", ["c"], ["y"])]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y]),
                         opset_imports=[h.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "ops.onnx"))
    with pytest.raises(ONNXError, match=r"ops\.onnx: unsupported operator\(s\) Elu, Erf "
                                        r"\(cnnlab runs Add, AveragePool, BatchNormalization"):
        load(tmp_path / "ops.onnx")


def test_unsupported_settings_are_listed_per_node(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 5, 5])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 5, 5])
    pads = h.make_tensor("pads", onnx.TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    nodes = [h.make_node("MaxPool", ["x"], ["a"], name="pool", kernel_shape=[2, 2],
                         dilations=[2, 2]),
             h.make_node("Pad", ["a", "pads"], ["y"], name="pad", mode="reflect")]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y], initializer=[pads]),
                         opset_imports=[h.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "set.onnx"))
    with pytest.raises(ONNXError, match=r"set\.onnx: cannot run 2 part\(s\) of the graph: "
                                        r"MaxPool node 'pool': MaxPool with dilations; Pad node "
                                        r"'pad': Pad mode 'reflect' \(constant only\)"):
        load(tmp_path / "set.onnx")


def test_shapes_that_do_not_infer(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    h = onnx.helper
    a = h.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2, 3])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", "m"])
    w = h.make_tensor("w", onnx.TensorProto.FLOAT, [4, 5], np.zeros(20, np.float32))
    model = h.make_model(h.make_graph([h.make_node("MatMul", ["a", "w"], ["y"])], "g", [a], [y],
                                      initializer=[w]),
                         opset_imports=[h.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "shapes.onnx"))
    with pytest.raises(ONNXError, match=r"shapes\.onnx: the shapes do not infer: .*MatMul"):
        load(tmp_path / "shapes.onnx")


def test_external_data_outside_the_folder_is_refused(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    w = h.make_tensor("w", onnx.TensorProto.FLOAT, [3, 2], np.zeros(6, np.float32))
    w.ClearField("float_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "24")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    model = h.make_model(h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y],
                                      initializer=[w]),
                         opset_imports=[h.make_opsetid("", 17)])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "ext.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ONNXError, match=r"ext\.onnx: tensor 'w' points at '\.\./\.\./etc/passwd', "
                                        r"outside the model's folder"):
        load(tmp_path / "m" / "ext.onnx")


def test_float16_inputs_are_named(tmp_path, onnx):
    from cnnlab.onnx import ONNXError, load

    model = _tiny(onnx)
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    onnx.save(model, str(tmp_path / "half.onnx"))
    with pytest.raises(ONNXError, match=r"half\.onnx: .*input 'x' is FLOAT16 \(cnnlab runs "
                                        r"float32 and float64\)"):
        load(tmp_path / "half.onnx")


def test_missing_onnx_package_names_the_extra(monkeypatch):
    import importlib

    from cnnlab.onnx import _deps

    real = importlib.import_module

    def fake(name, *args):
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real(name, *args)

    monkeypatch.setattr(_deps.importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r'pip install "cnnlab\[onnx\]"'):
        _deps.onnx()


def test_importing_cnnlab_onnx_does_not_import_onnx():
    import subprocess
    import sys

    code = "import sys, cnnlab.onnx; print('onnx' in sys.modules)"
    from tests.cli.helpers import cli_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env(), check=True)
    assert out.stdout.strip() == "False"


def test_layer_names_never_shadow_module_methods(tmp_path, onnx):
    from cnnlab.onnx import load

    h = onnx.helper
    f = onnx.TensorProto.FLOAT
    nodes = [h.make_node("Relu", ["x"], ["a"], name="eval"),
             h.make_node("Sigmoid", ["a"], ["y"], name="train")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", f, [1, 3])],
                         [h.make_tensor_value_info("y", f, [1, 3])])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]),
              str(tmp_path / "m.onnx"))
    net = load(tmp_path / "m.onnx")
    assert [n for n, _ in net.named_children()] == ["eval_2", "train_2"]
    net.eval().train()  # still the methods
    assert net.training
