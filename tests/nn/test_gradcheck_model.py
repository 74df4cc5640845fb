"""Whole models under gradcheck (float64 central differences, relative difference < 1e-7),
with respect to the input and every parameter."""

from __future__ import annotations

import numpy as np

import cnnlab as cl
from cnnlab import nn


def _owners(model):
    """name -> (module, attribute) for every parameter held directly as an attribute."""
    owners = {}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, nn.Parameter):
                owners[f"{prefix}.{attr}" if prefix else attr] = (module, attr)
    return owners


def gradcheck_model(model, x):
    """cl.gradcheck of x, *parameters -> model(x): each call puts the checked tensors in place
    of the parameters, so the analytic gradient is the model's own backward."""
    names = [n for n, _ in model.named_parameters()]
    owners = _owners(model)
    assert set(owners) == set(names), "every parameter must be a direct attribute here"
    originals = [getattr(*owners[n]) for n in names]

    def fn(xt, *params):
        for name, p in zip(names, params):
            setattr(*owners[name], p)
        try:
            return model(xt)
        finally:
            for name, p in zip(names, originals):
                setattr(*owners[name], p)

    return cl.gradcheck(fn, [x, *[p.data for p in originals]])


def test_conv_batchnorm_eval_pool_dense_float64():
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2D(2, 3, 3, padding=1, seed=1),
        nn.BatchNorm2D(3),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Conv2D(3, 4, 2, stride=1, seed=2),
        nn.AvgPool2D(2, stride=1),
        nn.Flatten(),
        nn.Dense(4, 3, seed=3),
    ).double()
    bn = model[1]
    bn.gamma.data = rng.uniform(0.5, 2.0, 3)
    bn.beta.data = rng.normal(size=3)
    bn.running_mean[...] = rng.normal(size=3)
    bn.running_var[...] = rng.uniform(0.5, 2.0, 3)
    model[0].bias.data = rng.normal(size=3)
    model.eval()
    x = rng.normal(size=(2, 6, 6, 2))
    result = gradcheck_model(model, x)
    assert len(result.per_input) == 1 + 8  # x and every parameter checked
    assert all(r is not None for r in result.per_input)
    assert result < 1e-7, result.describe()


def test_residual_concat_global_pool_tanh_float64():
    rng = np.random.default_rng(1)
    model = nn.Sequential(
        nn.Conv2D(2, 4, 3, padding="same", seed=0, dtype=np.float64),
        nn.Residual(
            nn.Sequential(nn.Conv2D(4, 4, 3, padding="same", seed=1, dtype=np.float64),
                          nn.Tanh()),
            nn.Conv2D(4, 4, 1, seed=2, dtype=np.float64),
        ),
        nn.Concat(
            nn.Conv2D(4, 2, 1, seed=3, dtype=np.float64),
            nn.Sequential(nn.Conv2D(4, 2, 3, padding=1, groups=2, seed=4, dtype=np.float64),
                          nn.Sigmoid()),
        ),
        nn.BatchNorm2D(4, dtype=np.float64),
        nn.GlobalAvgPool2D(),
        nn.Dense(4, 2, seed=5, dtype=np.float64),
        nn.Softmax(),
    )
    model[3].running_var[...] = rng.uniform(0.5, 2.0, 4)
    model.eval()
    result = gradcheck_model(model, rng.normal(size=(2, 5, 5, 2)))
    assert result < 1e-7, result.describe()


def test_batch_norm_training_mode_in_a_model_float64():
    rng = np.random.default_rng(2)
    # no bias before a training-mode batch norm: its gradient is exactly 0 (the mean cancels
    # it), and a relative difference of rounding noise against 0 means nothing
    model = nn.Sequential(nn.Dense(3, 4, bias=False, seed=0), nn.BatchNorm1D(4), nn.Tanh(),
                          nn.Dense(4, 2, seed=1)).double()
    result = gradcheck_model(model, rng.normal(size=(5, 3)))
    assert result < 1e-7, result.describe()
