"""One freeze: Module.freeze (what ``cnnlab train --freeze`` calls) also stops the running
statistics of the batch norms it freezes, as models.prepare_fine_tuning always did."""

from __future__ import annotations

import numpy as np

import cnnlab as cl
from cnnlab import models, nn, optim
from cnnlab.nn.freezing import FrozenBatchNorm2D
from cnnlab.train import fit


def _net():
    return nn.Sequential(nn.Conv2D(1, 3, 3, seed=0), nn.BatchNorm2D(3), nn.ReLU(),
                         nn.Conv2D(3, 2, 3, seed=1), nn.BatchNorm2D(2), nn.ReLU(),
                         nn.GlobalAvgPool2D(), nn.Dense(2, 2, seed=2))


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(2.0, 3.0, (16, 8, 8, 1)).astype(np.float32), np.arange(16) % 2


def test_module_freeze_stops_batch_norm_statistics():
    net = _net()
    assert net.freeze("0") == ["0.weight", "0.bias"]
    assert net.freeze("1") == ["1.gamma", "1.beta"]
    x, y = _data()
    fit(net, x, y, optimizer=optim.SGD(net.parameters(), lr=0.1), epochs=1, batch_size=8,
        verbose=False)
    frozen, free = net._layers["1"], net._layers["4"]
    assert isinstance(frozen, FrozenBatchNorm2D) and frozen.training is False
    # a new batch norm starts at mean 0, variance 1 (the oracle): the frozen one stays there
    np.testing.assert_array_equal(frozen.running_mean, np.zeros(3))
    np.testing.assert_array_equal(frozen.running_var, np.ones(3))
    assert not np.allclose(free.running_mean, 0)  # the trainable one learnt its statistics
    net.unfreeze("1")  # a trainable batch norm updates its statistics again
    assert type(net._layers["1"]) is nn.BatchNorm2D and net._layers["1"].training


def test_freeze_without_bn_stats_and_both_functions_agree():
    net = _net()
    net.freeze("1", freeze_bn_stats=False)
    assert type(net._layers["1"]) is nn.BatchNorm2D
    a, b = models.resnet20(seed=0), models.resnet20(seed=0)
    assert a.freeze("layer1") == models.freeze(b, "layer1")
    kinds = [type(m).__name__ for m in (a, b) for n, m in m.named_modules()]
    assert kinds[: len(kinds) // 2] == kinds[len(kinds) // 2:]
    assert "FrozenBatchNorm2D" in kinds
    x = cl.tensor(np.zeros((1, 32, 32, 3), np.float32))
    assert a(x).shape == (1, 10)


def test_docstring_examples_of_freezing():
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module("cnnlab.nn.freezing")).failed == 0
