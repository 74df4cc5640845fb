"""cnnlab.save / cnnlab.load: one .npz file (a cnnlab checkpoint, no pickle) and back."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

import cnnlab
from cnnlab import models, nn
from cnnlab.train import CheckpointError, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("name, kw", [("lenet5", {"num_classes": 3}),
                                      ("resnet20", {"width": 0.25}),
                                      ("googlenet", {"width": 0.125, "input_size": 40,
                                                     "in_channels": 1})])
def test_a_zoo_model_comes_back_the_same(tmp_path, name, kw):
    net = models.get(name, seed=1, **kw)
    path = cnnlab.save(net, tmp_path / "net.npz")
    back = cnnlab.load(path)
    assert type(back) is type(net) and back.training is False
    x = np.random.default_rng(0).normal(size=(2, *net.input_shape)).astype(np.float32)
    net.eval()
    np.testing.assert_array_equal(back(cnnlab.tensor(x)).numpy(), net(cnnlab.tensor(x)).numpy())
    with zipfile.ZipFile(path) as z:  # plain arrays only: .npy members, nothing pickled
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(path, allow_pickle=False) as f:
        assert "__meta__" in f.files


def test_a_checkpoint_written_as_cnnlab_train_does_loads(tmp_path):
    """The CLI's checkpoints: weights plus {"model": {name, num_classes, input_shape, ...}}."""
    net = models.get("lenet5", num_classes=4, seed=0)
    info = {"name": "lenet5", "num_classes": 4, "input_shape": [28, 28, 1], "dropout": None,
            "dataset": "mnist", "data_dir": None, "classes": list("0123")}
    save_checkpoint(tmp_path / "best.npz", net, extra={"model": info})
    back = cnnlab.load(tmp_path / "best.npz")
    for (n, a), (_, b) in zip(net.named_parameters(), back.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


def test_any_model_by_its_weights(tmp_path):
    net = nn.Sequential(nn.Dense(3, 2, seed=0), nn.ReLU(), nn.Dense(2, 1, seed=1))
    cnnlab.save(net, tmp_path / "mlp.npz")
    assert load_checkpoint(tmp_path / "mlp.npz")["meta"]["extra"] == {}
    with pytest.raises(CheckpointError, match=r"mlp.npz: describes no zoo model; build the model "
                                              r"and load the weights into it"):
        cnnlab.load(tmp_path / "mlp.npz")
    other = nn.Sequential(nn.Dense(3, 2, seed=5), nn.ReLU(), nn.Dense(2, 1, seed=6))
    assert cnnlab.load(tmp_path / "mlp.npz", model=other) is other
    np.testing.assert_array_equal(other._layers["0"].weight.data, net._layers["0"].weight.data)
    wrong = nn.Sequential(nn.Dense(3, 4, seed=0))
    with pytest.raises(CheckpointError, match=r"mlp.npz: does not match the model"):
        cnnlab.load(tmp_path / "mlp.npz", model=wrong)


def test_docstring_examples_of_saving():
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module("cnnlab.train.saving")).failed == 0
