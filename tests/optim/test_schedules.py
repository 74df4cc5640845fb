"""Learning-rate schedules: each formula at several epochs, the callable objects, LRScheduler,
agreement with torch.optim.lr_scheduler, and the pinned setting errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import optim

EPOCHS = [0, 1, 2, 3, 7, 10, 25]


def _opt(lr=0.1, groups=1):
    ps = [cl.tensor(np.ones(2), requires_grad=True) for _ in range(groups)]
    return optim.SGD([{"params": [p]} for p in ps], lr=lr)


# --------------------------------------------------------------------- formulas by hand
def test_hand_values():
    assert optim.inverse_time_decay(0, 0.2, 1.0) == 0.2
    assert optim.inverse_time_decay(3, 0.2, 1.0) == pytest.approx(0.05)  # 0.2 / 4
    assert optim.exponential_decay(0, 0.2, 0.95) == 0.2
    assert optim.exponential_decay(2, 0.2, 0.95) == pytest.approx(0.1805)  # 0.2 * 0.9025
    assert optim.inverse_sqrt_decay(0, 0.2, 0.5) == 0.2  # defined as lr0
    assert optim.inverse_sqrt_decay(1, 0.2, 0.5) == pytest.approx(0.1)  # 0.2 * 0.5 / 1
    assert optim.inverse_sqrt_decay(16, 0.2, 0.5) == pytest.approx(0.025)  # 0.1 / 4
    assert optim.step_decay(9, 0.2, 10, 0.5) == 0.2
    assert optim.step_decay(10, 0.2, 10, 0.5) == pytest.approx(0.1)
    assert optim.step_decay(29, 0.2, 10, 0.5) == pytest.approx(0.05)
    # cosine, lr0 0.1, warm-up 2 of 10 steps, min 0.02: 0, 0.05, then 0.1 -> 0.02
    cos = [optim.cosine_decay(t, 0.1, 10, 2, 0.02) for t in (0, 1, 2, 6, 10, 50)]
    assert cos == pytest.approx([0.0, 0.05, 0.1, 0.06, 0.02, 0.02], rel=1e-12)


@pytest.mark.parametrize("lr0, decay_rate", [(0.1, 0.5), (1.0, 0.0), (0.3, 2.0)])
def test_inverse_time(lr0, decay_rate):
    for t in EPOCHS:
        expected = lr0 / (1 + decay_rate * t)
        assert optim.inverse_time_decay(t, lr0, decay_rate) == pytest.approx(expected, rel=1e-15)
        assert optim.InverseTimeDecay(lr0, decay_rate)(t) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("lr0, rate", [(0.1, 0.95), (1.0, 1.0), (0.3, 0.5)])
def test_exponential(lr0, rate):
    for t in EPOCHS:
        expected = lr0 * np.prod([rate] * t)  # rate multiplied t times
        assert optim.exponential_decay(t, lr0, rate) == pytest.approx(expected, rel=1e-12)
        assert optim.ExponentialDecay(lr0, rate)(t) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("lr0, k", [(0.1, 1.0), (0.5, 0.3)])
def test_inverse_sqrt(lr0, k):
    for t in EPOCHS:
        expected = lr0 if t == 0 else lr0 * k / np.sqrt(t)
        assert optim.inverse_sqrt_decay(t, lr0, k) == pytest.approx(expected, rel=1e-15)
        assert optim.InverseSqrtDecay(lr0, k)(t) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("lr0, step_size, gamma", [(0.1, 3, 0.5), (1.0, 1, 0.9), (0.2, 10, 0.1)])
def test_step(lr0, step_size, gamma):
    for t in EPOCHS:
        drops = sum(1 for e in range(1, t + 1) if e % step_size == 0)  # epochs where it drops
        expected = lr0 * gamma**drops
        assert optim.step_decay(t, lr0, step_size, gamma) == pytest.approx(expected, rel=1e-12)
        assert optim.StepDecay(lr0, step_size, gamma)(t) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("warmup, min_lr", [(0, 0.0), (4, 0.001), (1, 0.05)])
def test_cosine(warmup, min_lr):
    lr0, total = 0.1, 20
    sched = optim.CosineDecay(lr0, total, warmup, min_lr)
    for t in range(total + 5):
        if t < warmup:
            expected = lr0 * t / warmup
        else:
            angle = math.pi * min(t - warmup, total - warmup) / (total - warmup)
            expected = min_lr + 0.5 * (lr0 - min_lr) * (1 + math.cos(angle))
        assert optim.cosine_decay(t, lr0, total, warmup, min_lr) == pytest.approx(
            expected, rel=1e-12, abs=1e-15
        )
        assert sched(t) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert sched(warmup) == pytest.approx(lr0) and sched(total) == pytest.approx(min_lr)


def test_schedule_repr():
    assert repr(optim.StepDecay(0.1, 5)) == "StepDecay(lr0=0.1, step_size=5, gamma=0.1)"


# --------------------------------------------------------------------- LRScheduler
def test_scheduler_sets_group_lrs():
    opt = _opt(lr=1.0)
    sched = optim.LRScheduler(opt, optim.ExponentialDecay(0.1, 0.5))
    assert opt.param_groups[0]["lr"] == 0.1  # epoch 0 is applied at construction
    lrs = []
    for _ in range(3):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.05, 0.025, 0.0125], rel=1e-15)
    sched.step(epoch=10)
    assert sched.get_last_lr() == pytest.approx([0.1 * 0.5**10])


def test_scheduler_with_any_callable_and_per_group_schedules():
    opt = _opt(groups=2)
    sched = optim.LRScheduler(opt, lambda epoch: 0.01 * (epoch + 1))
    sched.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.03, 0.03])
    per_group = optim.LRScheduler(opt, [optim.StepDecay(0.1, 2, 0.5), lambda e: 1.0 / (e + 1)])
    for _ in range(3):
        per_group.step()
    assert per_group.get_last_lr() == pytest.approx([0.05, 0.25])


def test_scheduler_drives_the_update():
    w = cl.tensor(np.array([0.0]), requires_grad=True)
    opt = optim.SGD([w], lr=123.0)
    sched = optim.LRScheduler(opt, optim.InverseTimeDecay(1.0, 1.0))
    for _ in range(3):  # lrs 1, 1/2, 1/3 with gradient 1
        w.grad = np.array([1.0])
        opt.step()
        sched.step()
    assert w.data[0] == pytest.approx(-(1 + 1 / 2 + 1 / 3), rel=1e-12)


def test_scheduler_state_dict():
    opt = _opt()
    sched = optim.LRScheduler(opt, optim.StepDecay(0.1, 2, 0.5))
    for _ in range(5):
        sched.step()
    state = sched.state_dict()
    assert state == {"epoch": 5}
    other_opt = _opt(lr=7.0)
    other = optim.LRScheduler(other_opt, optim.StepDecay(0.1, 2, 0.5))
    other.load_state_dict(state)
    assert other.epoch == 5 and other_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    other.step()
    assert other.get_last_lr() == pytest.approx([0.1 * 0.5**3])


# --------------------------------------------------------------------- torch agreement
def _torch_lrs(torch, make_scheduler, epochs):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def _ours(schedule, epochs):
    opt = _opt()
    sched = optim.LRScheduler(opt, schedule)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    return lrs


def test_step_and_exponential_match_torch(torch):
    lr_sched = torch.optim.lr_scheduler
    expected = _torch_lrs(torch, lambda o: lr_sched.StepLR(o, step_size=3, gamma=0.5), 12)
    assert _ours(optim.StepDecay(0.1, 3, 0.5), 12) == pytest.approx(expected, rel=1e-9)
    expected = _torch_lrs(torch, lambda o: lr_sched.ExponentialLR(o, gamma=0.9), 12)
    assert _ours(optim.ExponentialDecay(0.1, 0.9), 12) == pytest.approx(expected, rel=1e-9)


def test_cosine_matches_torch(torch):
    lr_sched = torch.optim.lr_scheduler
    expected = _torch_lrs(
        torch, lambda o: lr_sched.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 11
    )
    assert _ours(optim.CosineDecay(0.1, 10, 0, 0.001), 11) == pytest.approx(expected, rel=1e-9)


def test_inverse_time_matches_torch_lambda(torch):
    lr_sched = torch.optim.lr_scheduler
    expected = _torch_lrs(torch, lambda o: lr_sched.LambdaLR(o, lambda e: 1 / (1 + 0.5 * e)), 8)
    assert _ours(optim.InverseTimeDecay(0.1, 0.5), 8) == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: optim.inverse_time_decay(-1, 0.1, 0.5),
            "inverse_time_decay: epoch must be >= 0; received epoch=-1",
        ),
        (
            lambda: optim.inverse_time_decay(1, 0.1, -0.5),
            "inverse_time_decay: decay_rate must be >= 0; received decay_rate=-0.5",
        ),
        (
            lambda: optim.exponential_decay(1, -0.1, 0.5),
            "exponential_decay: lr0 must be >= 0; received lr0=-0.1",
        ),
        (
            lambda: optim.exponential_decay(1, 0.1, 1.5),
            r"exponential_decay: rate must be in \(0, 1\]; received rate=1.5",
        ),
        (
            lambda: optim.inverse_sqrt_decay(1, 0.1, 0),
            "inverse_sqrt_decay: k must be > 0; received k=0",
        ),
        (
            lambda: optim.step_decay(1, 0.1, 0),
            ("step_decay: step_size must be an integer >= 1; received step_size=0"),
        ),
        (
            lambda: optim.step_decay(1, 0.1, 2, gamma=0),
            (
                r"step_decay: gamma must be in \(0, 1\]; "
                r"received gamma=0"
            ),
        ),
        (
            lambda: optim.cosine_decay(1, 0.1, 10, 10),
            (
                "cosine_decay: warmup_steps must be < "
                "total_steps; received warmup_steps=10, "
                "total_steps=10"
            ),
        ),
        (
            lambda: optim.cosine_decay(1, 0.1, 10, 0, 0.5),
            ("cosine_decay: min_lr must be <= lr0; received min_lr=0.5, lr0=0.1"),
        ),
        (
            lambda: optim.InverseTimeDecay(-1, 0.5),
            ("InverseTimeDecay: lr0 must be >= 0; received lr0=-1"),
        ),
        (
            lambda: optim.ExponentialDecay(0.1, 0.0),
            (
                r"ExponentialDecay: rate must be in \(0, 1\]; "
                r"received rate=0.0"
            ),
        ),
        (
            lambda: optim.InverseSqrtDecay(0.1, k=-2),
            ("InverseSqrtDecay: k must be > 0; received k=-2"),
        ),
        (
            lambda: optim.StepDecay(0.1, 2.5),
            ("StepDecay: step_size must be an integer >= 1; received step_size=2.5"),
        ),
        (
            lambda: optim.CosineDecay(0.1, 0),
            ("CosineDecay: total_steps must be an integer >= 1; received total_steps=0"),
        ),
        (
            lambda: optim.CosineDecay(0.1, 10, -1),
            ("CosineDecay: warmup_steps must be an integer >= 0; received warmup_steps=-1"),
        ),
        (
            lambda: optim.CosineDecay(0.1, 10, 0, min_lr=-0.1),
            ("CosineDecay: min_lr must be >= 0; received min_lr=-0.1"),
        ),
        (
            lambda: optim.LRScheduler(_opt(groups=2), [lambda e: 0.1] * 3),
            (
                "LRScheduler: received 3 schedules for 2 parameter groups; "
                "give one schedule, or one "
                "per group"
            ),
        ),
        (
            lambda: optim.LRScheduler(_opt(), lambda e: -0.1 * e).step(),
            (
                "LRScheduler: the schedule returned lr=-0.1 at epoch 1; a learning rate must be a "
                "number >= 0"
            ),
        ),
    ],
)
def test_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_type_errors():
    with pytest.raises(TypeError, match="LRScheduler: a schedule must be callable; received 0.1"):
        optim.LRScheduler(_opt(), 0.1)
    with pytest.raises(
        TypeError,
        match="LRScheduler: optimizer must be an optimizer with param_groups; received list",
    ):
        optim.LRScheduler([], lambda e: 0.1)
    with pytest.raises(
        TypeError, match="exponential_decay: rate must be a number; received rate='0.5'"
    ):
        optim.exponential_decay(1, 0.1, "0.5")
