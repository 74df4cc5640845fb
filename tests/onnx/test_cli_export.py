"""``cnnlab export --checkpoint FILE model.onnx``: the file onnxruntime runs to the
checkpoint's outputs; bad input is one ``cnnlab: error:`` line and exit status 2."""

from __future__ import annotations

import numpy as np

import cnnlab as cl
from cnnlab import models
from tests.cli.helpers import assert_ok, assert_user_error, run_cli
from tests.onnx.conftest import run_ort
from tests.onnx.test_export import rel_err


def _checkpoint(tmp_path):
    from cnnlab.train.checkpoint import save_checkpoint

    model = models.get("lenet5", num_classes=4, seed=3)
    info = {"name": "lenet5", "num_classes": 4, "input_shape": [28, 28, 1], "dropout": None}
    save_checkpoint(tmp_path / "best.npz", model, extra={"model": info})
    return model.eval(), tmp_path / "best.npz"


def test_export_command_writes_a_model_onnxruntime_runs(tmp_path, ort):
    model, ckpt = _checkpoint(tmp_path)
    result = run_cli("export", "--checkpoint", ckpt, "lenet.onnx", cwd=tmp_path)
    assert_ok(result)
    assert "wrote lenet.onnx: lenet5 taking (N, 1, 28, 28) NCHW images" in result.stdout
    x = np.random.default_rng(0).standard_normal((5, 28, 28, 1)).astype(np.float32)
    with cl.no_grad():
        want = model(cl.tensor(x)).numpy()
    (got,) = run_ort(ort, tmp_path / "lenet.onnx", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert rel_err(got, want) < 1e-5
    result = run_cli("export", "--checkpoint", ckpt, "nhwc.onnx", "--nhwc", cwd=tmp_path)
    assert_ok(result)
    (got,) = run_ort(ort, tmp_path / "nhwc.onnx", x)
    assert rel_err(got, want) < 1e-5


def test_export_command_bad_input(tmp_path, onnx):
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    assert_user_error(run_cli("export", "--checkpoint", "junk.npz", "m.onnx", cwd=tmp_path),
                      "junk.npz")
    assert_user_error(run_cli("export", "--checkpoint", "none.npz", "m.onnx", cwd=tmp_path),
                      "none.npz")
    _, ckpt = _checkpoint(tmp_path)
    assert_user_error(run_cli("export", "--checkpoint", ckpt, "m.onnx", "--opset", "12",
                              cwd=tmp_path), "--opset", "must be an integer >= 17")
    (tmp_path / "dir.onnx").mkdir()
    assert_user_error(run_cli("export", "--checkpoint", ckpt, "dir.onnx", cwd=tmp_path),
                      "dir.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_onnx_file_fine_tunes_on_the_command_line(tmp_path, onnx):
    """``cnnlab summary m.onnx``; ``cnnlab train --from m.onnx`` (a new 4-class head, the first
    convolution frozen); ``cnnlab evaluate`` rebuilds the model from the ONNX file it names."""
    import cnnlab.onnx
    from tests.cli.helpers import make_idx_dataset

    data = make_idx_dataset(tmp_path / "data", num_classes=4, n_train=60, n_test=20, seed=0)
    model = models.get("lenet5", seed=0)  # 10 classes
    cnnlab.onnx.export(model, tmp_path / "lenet.onnx", (28, 28, 1))
    result = run_cli("summary", "lenet.onnx", cwd=tmp_path)
    assert_ok(result)
    assert "features_0 (Conv2D)" in result.stdout and "61,706" in result.stdout
    result = run_cli("train", "--from", "lenet.onnx", "--data-dir", data, "--epochs", "1",
                     "--num-classes", "4", "--freeze", "features_0", "--batch-size", "16",
                     "--out", "run", "--quiet", cwd=tmp_path)
    assert_ok(result)
    from cnnlab.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "best.npz")
    assert ckpt["meta"]["extra"]["model"]["name"] == "onnx:" + str(tmp_path / "lenet.onnx")
    w = ckpt["model"]["features_0.weight"]  # frozen: still the exported weights
    assert np.array_equal(w, model.state_dict()["features.0.weight"])
    assert ckpt["model"]["classifier_4.weight"].shape == (84, 4)
    result = run_cli("evaluate", "--checkpoint", "run/best.npz", cwd=tmp_path)
    assert_ok(result)
    assert_user_error(run_cli("train", "--from", "missing.onnx", "--data-dir", data,
                              "--quiet", cwd=tmp_path), "missing.onnx", "cannot read")
