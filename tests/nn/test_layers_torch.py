"""Each layer against the equivalent torch.nn layer with the same weights (layouts converted:
NHWC <-> NCHW, HWIO -> OIHW, dense (in, out) -> (out, in)). Forward in float64 to 1e-9
relative, gradients of the parameters and the input too; one float32 check per family."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import nn


def nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def close(actual, expected, dtype=np.float64):
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    expected = np.asarray(expected, np.float64)
    atol = rtol * max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def run_both(torch, layer, tlayer, x, image=True, dtype=np.float64):
    """Forward and backward (random cotangent) through both; returns (ours, theirs) arrays."""
    xt = torch.tensor(nchw(x) if image else x, requires_grad=True)
    ours_x = cl.tensor(x, requires_grad=True)
    y = layer(ours_x)
    yt = tlayer(xt)
    yt_np = yt.detach().numpy()
    if image and yt_np.ndim == 4:
        yt_np = nhwc(yt_np)
    close(y.numpy(), yt_np, dtype)
    gy = np.random.default_rng(5).normal(size=y.shape).astype(dtype)
    y.backward(gy)
    yt.backward(torch.tensor(nchw(gy) if image and gy.ndim == 4 else gy))
    gx_t = xt.grad.numpy()
    close(ours_x.grad, nhwc(gx_t) if image else gx_t, dtype)
    return y


def rand(*shape, dtype=np.float64, seed=0, low=None):
    r = np.random.default_rng(seed)
    a = r.uniform(0.1, 2.0, size=shape) if low == "positive" else r.normal(size=shape)
    return a.astype(dtype)


CONV_CASES = [
    dict(cin=3, cout=4, k=3, stride=1, padding=0, dilation=1, groups=1, bias=True),
    dict(cin=3, cout=6, k=3, stride=2, padding=1, dilation=1, groups=1, bias=False),
    dict(cin=4, cout=6, k=(3, 2), stride=(1, 2), padding=(1, 0), dilation=1, groups=2, bias=True),
    dict(cin=2, cout=4, k=3, stride=1, padding=2, dilation=2, groups=1, bias=True),
    dict(cin=4, cout=4, k=3, stride=1, padding=1, dilation=1, groups=4, bias=True),  # depthwise
    dict(cin=3, cout=5, k=5, stride=1, padding="same", dilation=1, groups=1, bias=True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_matches_torch(torch, case):
    layer = nn.Conv2D(case["cin"], case["cout"], case["k"], stride=case["stride"],
                      padding=case["padding"], dilation=case["dilation"], groups=case["groups"],
                      bias=case["bias"], seed=3, dtype=np.float64)
    if layer.bias is not None:
        layer.bias.data = rand(case["cout"], seed=4)
    t = torch.nn.Conv2d(case["cin"], case["cout"], case["k"], stride=case["stride"],
                        padding=case["padding"], dilation=case["dilation"],
                        groups=case["groups"], bias=case["bias"]).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(layer.weight.data.transpose(3, 2, 0, 1)))
        if case["bias"]:
            t.bias.copy_(torch.tensor(layer.bias.data))
    run_both(torch, layer, t, rand(2, 7, 8, case["cin"], seed=1))
    close(layer.weight.grad, t.weight.grad.numpy().transpose(2, 3, 1, 0))
    if case["bias"]:
        close(layer.bias.grad, t.bias.grad.numpy())


def test_conv2d_same_with_stride_2_matches_torch_with_explicit_padding(torch):
    # H = 7, K = 3, s = 2: output ceil(7/2) = 4 needs (4-1)*2 + 3 - 7 = 2 rows: 1 top, 1 bottom;
    # W = 8: output 4 needs (4-1)*2 + 3 - 8 = 1 column: 0 left, 1 right (extra on the right).
    layer = nn.Conv2D(2, 3, 3, stride=2, padding="same", seed=0, dtype=np.float64)
    t = torch.nn.Sequential(torch.nn.ZeroPad2d((0, 1, 1, 1)),
                            torch.nn.Conv2d(2, 3, 3, stride=2)).double()
    with torch.no_grad():
        t[1].weight.copy_(torch.tensor(layer.weight.data.transpose(3, 2, 0, 1)))
        t[1].bias.zero_()
    y = run_both(torch, layer, t, rand(1, 7, 8, 2))
    assert y.shape == (1, 4, 4, 3)


def test_conv2d_float32_matches_torch(torch):
    layer = nn.Conv2D(3, 8, 3, padding=1, seed=0)
    t = torch.nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(layer.weight.data.transpose(3, 2, 0, 1)))
        t.bias.zero_()
    y = run_both(torch, layer, t, rand(2, 6, 6, 3, dtype=np.float32), dtype=np.float32)
    assert y.dtype == np.float32


@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_torch_linear(torch, bias):
    layer = nn.Dense(6, 4, bias=bias, seed=0, dtype=np.float64)
    if bias:
        layer.bias.data = rand(4, seed=2)
    t = torch.nn.Linear(6, 4, bias=bias).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(layer.weight.data.T))
        if bias:
            t.bias.copy_(torch.tensor(layer.bias.data))
    run_both(torch, layer, t, rand(5, 6), image=False)
    close(layer.weight.grad, t.weight.grad.numpy().T)
    if bias:
        close(layer.bias.grad, t.bias.grad.numpy())


@pytest.mark.parametrize("size,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))])
def test_max_pool_matches_torch(torch, size, stride, padding):
    t = torch.nn.MaxPool2d(size, stride=stride, padding=padding)
    run_both(torch, nn.MaxPool2D(size, stride=stride, padding=padding), t, rand(2, 7, 6, 3))


@pytest.mark.parametrize("size,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))])
def test_avg_pool_matches_torch_without_padded_cells(torch, size, stride, padding):
    t = torch.nn.AvgPool2d(size, stride=stride, padding=padding, count_include_pad=False)
    run_both(torch, nn.AvgPool2D(size, stride=stride, padding=padding), t, rand(2, 7, 6, 3))


@pytest.mark.parametrize("p,size,stride", [(2, 2, None), (3, 3, 1), (1, (2, 3), (2, 1))])
def test_lp_pool_matches_torch(torch, p, size, stride):
    t = torch.nn.LPPool2d(p, size, stride=stride)
    run_both(torch, nn.LPPool2D(p, size, stride=stride), t, rand(2, 6, 7, 3, low="positive"))


def test_global_avg_pool_matches_torch(torch):
    t = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    run_both(torch, nn.GlobalAvgPool2D(), t, rand(3, 5, 4, 6))


def test_flatten_is_channels_last(torch):
    x = rand(2, 3, 4, 5)
    y = nn.Flatten()(cl.tensor(x)).numpy()
    np.testing.assert_array_equal(y, torch.flatten(torch.tensor(x), 1).numpy())
    assert y[0, 1] == x[0, 0, 0, 1]  # the channel varies fastest


@pytest.mark.parametrize("padding,torch_pad", [
    (1, (1, 1, 1, 1)), ((1, 2), (2, 2, 1, 1)), (((0, 1), (2, 0)), (2, 0, 0, 1)),
])
def test_zero_pad_matches_torch(torch, padding, torch_pad):
    run_both(torch, nn.ZeroPad2D(padding), torch.nn.ZeroPad2d(torch_pad), rand(2, 3, 4, 2))


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "Sigmoid", "Tanh"])
def test_activations_match_torch(torch, name):
    ours = {"ReLU": nn.ReLU(), "LeakyReLU": nn.LeakyReLU(0.2), "Sigmoid": nn.Sigmoid(),
            "Tanh": nn.Tanh()}[name]
    theirs = {"ReLU": torch.nn.ReLU(), "LeakyReLU": torch.nn.LeakyReLU(0.2),
              "Sigmoid": torch.nn.Sigmoid(), "Tanh": torch.nn.Tanh()}[name]
    run_both(torch, ours, theirs, rand(2, 4, 4, 3))


def test_leaky_relu_default_slope_matches_torch(torch):
    run_both(torch, nn.LeakyReLU(), torch.nn.LeakyReLU(), rand(4, 5), image=False)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_matches_torch(torch, axis):
    run_both(torch, nn.Softmax(axis=axis), torch.nn.Softmax(dim=axis), rand(4, 5), image=False)


def test_dropout_eval_matches_torch_identity(torch):
    x = rand(3, 4, 4, 2)
    run_both(torch, nn.Dropout(0.5, seed=0).eval(), torch.nn.Dropout(0.5).eval(), x)


def test_dropout_training_statistics():
    # keep_prob 0.7: kept units are x / 0.7, the fraction kept is 0.7 within 5 standard errors
    n = 200_000
    y = nn.Dropout(0.3, seed=1)(cl.tensor(np.ones(n))).numpy()
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.7)
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.7 * 0.3 / n)


def _torch_bn(torch, cls, ours):
    t = cls(ours.channels, eps=ours.eps, momentum=1 - ours.momentum).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(ours.gamma.data))
        t.bias.copy_(torch.tensor(ours.beta.data))
        t.running_mean.copy_(torch.tensor(ours.running_mean))
        t.running_var.copy_(torch.tensor(ours.running_var))
    return t


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_2d_matches_torch(torch, training):
    bn = nn.BatchNorm2D(3, momentum=0.8, eps=1e-3, dtype=np.float64)
    bn.gamma.data = rand(3, seed=2) + 2
    bn.beta.data = rand(3, seed=3)
    bn.running_mean[...] = rand(3, seed=4)
    bn.running_var[...] = rand(3, seed=5, low="positive")
    t = _torch_bn(torch, torch.nn.BatchNorm2d, bn)
    bn.train(training)
    t.train(training)
    run_both(torch, bn, t, rand(4, 3, 5, 3, seed=6) * 2 + 1)
    close(bn.running_mean, t.running_mean.numpy())
    close(bn.running_var, t.running_var.numpy())
    close(bn.gamma.grad, t.weight.grad.numpy())
    close(bn.beta.grad, t.bias.grad.numpy())


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_1d_matches_torch(torch, training):
    bn = nn.BatchNorm1D(4, dtype=np.float64)
    bn.gamma.data = rand(4, seed=2) + 2
    bn.running_var[...] = rand(4, seed=5, low="positive")
    t = _torch_bn(torch, torch.nn.BatchNorm1d, bn)
    bn.train(training)
    t.train(training)
    run_both(torch, bn, t, rand(6, 4, seed=6), image=False)
    close(bn.running_mean, t.running_mean.numpy())
    close(bn.running_var, t.running_var.numpy())
    close(bn.gamma.grad, t.weight.grad.numpy())


def test_small_network_matches_torch(torch):
    """A LeNet-like stack end to end, float32, weights copied layer by layer."""
    ours = nn.Sequential(
        nn.Conv2D(1, 4, 5, padding=2, seed=0), nn.BatchNorm2D(4), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(4, 8, 3, seed=1), nn.Tanh(), nn.AvgPool2D(2),
        nn.Flatten(), nn.Dense(8 * 2 * 2, 10, seed=2),
    )
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 5, padding=2), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 8, 3), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
    )
    dense = torch.nn.Linear(32, 10)
    with torch.no_grad():
        for i in (0, 4):
            t[i].weight.copy_(torch.tensor(ours[i].weight.data.transpose(3, 2, 0, 1)))
            t[i].bias.zero_()
        dense.weight.copy_(torch.tensor(ours[8].weight.data.T))
        dense.bias.zero_()
    x = rand(3, 12, 12, 1, dtype=np.float32)
    y = ours(cl.tensor(x)).numpy()
    # torch flattens NCHW; ours flattens NHWC: flatten after moving channels last
    yt = dense(t(torch.tensor(nchw(x))).permute(0, 2, 3, 1).flatten(1)).detach().numpy()
    close(y, yt, np.float32)
