"""Shared test problems for the optimizer tests: a quadratic with a weight and a bias."""

from __future__ import annotations

import numpy as np

from cnnlab import optim
from cnnlab.nn.parameter import Parameter

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "nesterov": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, beta=0.9, weight_decay=0.02),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


def quadratic(seed=0, dtype=np.float64):
    """Weights, a bias and the curvatures of L = sum(a * W^2) / 2 + sum(c * b^2) / 2."""
    rng = np.random.default_rng(seed)
    w = Parameter(rng.normal(size=(3, 4)).astype(dtype))
    b = Parameter(rng.normal(size=(4,)).astype(dtype), regularize=False)
    curv = [rng.uniform(0.5, 2.0, size=(3, 4)), rng.uniform(0.5, 2.0, size=(4,))]
    return [w, b], curv


def set_grads(params, curv, noise):
    """g = a * W + noise: the gradient of the quadratic plus a fixed perturbation."""
    for p, a, n in zip(params, curv, noise):
        p.grad = (a * p.data + n).astype(p.dtype)


def make_noise(seed, steps, shapes):
    rng = np.random.default_rng(seed)
    return [[0.1 * rng.normal(size=s) for s in shapes] for _ in range(steps)]


def run(opt, params, curv, noise):
    for step_noise in noise:
        set_grads(params, curv, step_noise)
        opt.step()
