"""Optimizers, regularization helpers and learning-rate schedules.

>>> import numpy as np, cnnlab as cl
>>> from cnnlab import optim
>>> w = cl.tensor(np.ones((3, 2)), requires_grad=True)
>>> opt = optim.Adam([w], lr=0.01)
>>> (w * w).sum().backward()
>>> opt.step()
>>> opt.zero_grad()
>>> w.grad is None, w.shape
(True, (3, 2))
"""

from cnnlab.optim.adam import Adam, AdamW
from cnnlab.optim.optimizer import Optimizer
from cnnlab.optim.regularization import clip_grad_norm, l2_penalty
from cnnlab.optim.rmsprop import RMSprop
from cnnlab.optim.schedules import (
    CosineDecay,
    ExponentialDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    LRScheduler,
    StepDecay,
    cosine_decay,
    exponential_decay,
    inverse_sqrt_decay,
    inverse_time_decay,
    step_decay,
)
from cnnlab.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineDecay",
    "ExponentialDecay",
    "InverseSqrtDecay",
    "InverseTimeDecay",
    "LRScheduler",
    "Optimizer",
    "RMSprop",
    "StepDecay",
    "clip_grad_norm",
    "cosine_decay",
    "exponential_decay",
    "inverse_sqrt_decay",
    "inverse_time_decay",
    "l2_penalty",
    "step_decay",
]
