"""The Optimizer base: parameter groups, skipping, state dicts and setting checks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import optim
from cnnlab.nn.parameter import Parameter
from tests.optim._problems import OPTIMIZERS, make_noise, quadratic, run


def test_param_groups_own_lr_by_hand():
    a = cl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = cl.tensor(np.array([3.0]), requires_grad=True)
    frozen_by_lr = cl.tensor(np.array([5.0]), requires_grad=True)
    opt = optim.SGD(
        [{"params": [a]}, {"params": [b], "lr": 0.5}, {"params": [frozen_by_lr], "lr": 0.0}], lr=0.1
    )
    for p in (a, b, frozen_by_lr):
        p.grad = np.ones_like(p.data)
    opt.step()
    np.testing.assert_array_equal(a.data, [0.9, 1.9])
    np.testing.assert_array_equal(b.data, [2.5])
    np.testing.assert_array_equal(frozen_by_lr.data, [5.0])
    opt.param_groups[0]["lr"] = 1.0  # a schedule changes a group's rate
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, [-0.1, 0.9], rtol=1e-12)


def test_add_param_group():
    w = cl.tensor(np.ones((2, 2)), requires_grad=True)
    extra = cl.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [extra], "lr": 0.2})
    assert opt.param_groups[1]["momentum"] == 0.9
    extra.grad = np.ones(3)
    opt.step()
    np.testing.assert_allclose(extra.data, 0.8)
    with pytest.raises(ValueError, match=r"SGD: a parameter appears more than once \(position 2\)"):
        opt.add_param_group({"params": [w]})


# --------------------------------------------------------------------- skipping, zero_grad
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_skips_missing_grads_and_frozen_params(name):
    params, _ = quadratic(7)
    frozen = Parameter(np.ones((2, 2)), requires_grad=False)
    opt = OPTIMIZERS[name](params + [frozen])
    before = [p.data.copy() for p in params]
    frozen.grad = np.ones((2, 2))  # a stale gradient on a frozen parameter
    params[0].grad = np.ones((3, 4))
    opt.step()
    np.testing.assert_array_equal(frozen.data, np.ones((2, 2)))
    np.testing.assert_array_equal(params[1].data, before[1])  # grad None
    assert not np.array_equal(params[0].data, before[0])
    assert frozen not in opt.state and params[1] not in opt.state
    opt.zero_grad()
    assert all(p.grad is None for p in params + [frozen])


def test_step_rejects_a_gradient_of_the_wrong_shape():
    w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = np.ones((3, 2))
    with pytest.raises(
        ValueError,
        match=r"SGD.step: a gradient has shape \(3, 2\) but its "
        r"parameter has shape \(2, 3\)",
    ):
        opt.step()


# --------------------------------------------------------------------- state dict
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_continues_bitwise(name):
    params, curv = quadratic(9)
    noise = make_noise(10, 10, [p.shape for p in params])
    straight = [Parameter(p.data.copy(), regularize=p.regularize) for p in params]
    reference = OPTIMIZERS[name](straight)
    run(reference, straight, curv, noise)

    opt = OPTIMIZERS[name](params)
    run(opt, params, curv, noise[:4])
    sd = opt.state_dict()
    # the flat format saves without pickle: JSON for the groups, .npz for the arrays
    text = json.dumps({k: v for k, v in sd.items() if k != "state"})
    buf = io.BytesIO()
    np.savez(buf, **sd["state"])
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert all(isinstance(v, np.ndarray) for v in sd["state"].values())
    resumed = [Parameter(p.data.copy(), regularize=p.regularize) for p in params]
    fresh = OPTIMIZERS[name](resumed)
    fresh.load_state_dict({**json.loads(text), "state": arrays})
    run(fresh, resumed, curv, noise[4:])
    for p, q in zip(resumed, straight):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_format():
    w = Parameter(np.ones((2, 3)))
    b = Parameter(np.zeros(3))
    opt = optim.Adam([{"params": [w]}, {"params": [b], "lr": 0.1}])
    w.grad = np.ones((2, 3))
    opt.step()
    opt.step()
    sd = opt.state_dict()
    assert sd["optimizer"] == "Adam"
    assert sd["groups"] == [
        {
            "params": [0],
            "lr": 0.001,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.0,
        },
        {"params": [1], "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    ]
    assert sorted(sd["state"]) == ["0.m", "0.step", "0.v"]  # b had no gradient yet
    assert sd["state"]["0.step"].shape == () and int(sd["state"]["0.step"]) == 2
    sd["state"]["0.m"][...] = 123.0  # a copy: the optimizer's state is untouched
    assert opt.state[w]["m"][0, 0] != 123.0


def test_load_state_dict_restores_settings_and_copies():
    w = Parameter(np.ones((2, 3)))
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    w.grad = np.ones((2, 3))
    opt.step()
    sd = opt.state_dict()
    other_w = Parameter(np.ones((2, 3)))
    other = optim.SGD([other_w], lr=0.5)
    other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.1 and other.param_groups[0]["momentum"] == 0.9
    sd["state"]["0.velocity"][...] = 7.0
    np.testing.assert_array_equal(other.state[other_w]["velocity"], np.ones((2, 3)))


def test_load_state_dict_errors():
    w = Parameter(np.ones((2, 3)))
    opt = optim.Adam([w])
    w.grad = np.ones((2, 3))
    opt.step()
    good = opt.state_dict()
    target = optim.Adam([Parameter(np.ones((2, 3)))])
    with pytest.raises(
        ValueError, match="Adam.load_state_dict: the state was saved by SGD, not Adam"
    ):
        target.load_state_dict({**good, "optimizer": "SGD"})
    with pytest.raises(
        ValueError,
        match=r"Adam.load_state_dict: the state has 2 parameter "
        r"group\(s\) but the optimizer has 1",
    ):
        target.load_state_dict({**good, "groups": good["groups"] * 2})
    with pytest.raises(
        ValueError,
        match=r"Adam.load_state_dict: group 0 has 2 parameter\(s\) "
        r"in the state but 1 in the optimizer",
    ):
        target.load_state_dict({**good, "groups": [{**good["groups"][0], "params": [0, 1]}]})
    bad_shape = {**good["state"], "0.m": np.ones((3, 2))}
    with pytest.raises(
        ValueError,
        match=r"Adam.load_state_dict: state entry '0.m' has shape "
        r"\(3, 2\) but parameter 0 has shape \(2, 3\)",
    ):
        target.load_state_dict({**good, "state": bad_shape})
    with pytest.raises(ValueError, match="Adam.load_state_dict: unexpected state entry '0.q'"):
        target.load_state_dict({**good, "state": {**good["state"], "0.q": np.ones((2, 3))}})
    with pytest.raises(
        ValueError,
        match="Adam.load_state_dict: state entry '5.m' names parameter 5 but the optimizer has 1",
    ):
        target.load_state_dict({**good, "state": {"5.m": np.ones((2, 3))}})
    missing = {k: v for k, v in good["state"].items() if k != "0.v"}
    with pytest.raises(
        ValueError,
        match=r"Adam.load_state_dict: parameter 0 lacks state "
        r"entries \['v'\]",
    ):
        target.load_state_dict({**good, "state": missing})
    with pytest.raises(ValueError, match="Adam: lr must be >= 0; received lr=-1"):
        target.load_state_dict({**good, "groups": [{**good["groups"][0], "lr": -1}]})
    # nothing was half-loaded by the failures above
    assert target.state == {} and target.param_groups[0]["lr"] == 0.001


# --------------------------------------------------------------------- settings
def _w():
    return [cl.tensor(np.ones((2, 2)), requires_grad=True)]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: optim.SGD(_w(), lr=-0.1), "SGD: lr must be >= 0; received lr=-0.1"),
        (
            lambda: optim.SGD(_w(), lr=0.1, momentum=1.0),
            r"SGD: momentum must be in \[0, 1\); received momentum=1.0",
        ),
        (
            lambda: optim.SGD(_w(), lr=0.1, momentum=-0.5),
            r"SGD: momentum must be in \[0, 1\); received momentum=-0.5",
        ),
        (
            lambda: optim.SGD(_w(), lr=0.1, nesterov=True),
            "SGD: nesterov=True needs momentum > 0; received momentum=0.0",
        ),
        (
            lambda: optim.SGD(_w(), lr=0.1, weight_decay=-1e-4),
            "SGD: weight_decay must be >= 0; received weight_decay=-0.0001",
        ),
        (lambda: optim.SGD(_w(), lr=float("nan")), "SGD: lr must be a number; received lr=nan"),
        (lambda: optim.RMSprop(_w(), lr=-1.0), "RMSprop: lr must be >= 0; received lr=-1.0"),
        (
            lambda: optim.RMSprop(_w(), beta=1.5),
            (
                r"RMSprop: beta must be in \[0, 1\); received "
                r"beta=1.5"
            ),
        ),
        (lambda: optim.RMSprop(_w(), eps=0.0), "RMSprop: eps must be > 0; received eps=0.0"),
        (
            lambda: optim.Adam(_w(), beta1=1.0),
            (
                r"Adam: beta1 must be in \[0, 1\); received "
                r"beta1=1.0"
            ),
        ),
        (
            lambda: optim.Adam(_w(), beta2=-0.1),
            (
                r"Adam: beta2 must be in \[0, 1\); received "
                r"beta2=-0.1"
            ),
        ),
        (lambda: optim.Adam(_w(), eps=-1e-8), "Adam: eps must be > 0; received eps=-1e-08"),
        (
            lambda: optim.AdamW(_w(), weight_decay=-0.01),
            "AdamW: weight_decay must be >= 0; received weight_decay=-0.01",
        ),
        (
            lambda: optim.AdamW([{"params": _w(), "lr": -2}]),
            ("AdamW: lr must be >= 0; received lr=-2"),
        ),
        (
            lambda: optim.Adam([{"params": _w(), "learning_rate": 0.1}]),
            (
                r"Adam: unknown setting\(s\) \['learning_rate'\] in a parameter group; "
                r"the settings are "
                r"\['beta1', 'beta2', 'eps', 'lr', 'weight_decay'\]"
            ),
        ),
        (lambda: optim.SGD([], lr=0.1), "SGD: received an empty parameter list"),
        (
            lambda: optim.SGD(_w() * 1 + _w() * 0 + [_w()[0]] * 2, lr=0.1),
            r"SGD: a parameter appears more than once \(position 2\)",
        ),
        (lambda: optim.SGD([{"lr": 0.1}], lr=0.1), "SGD: a parameter group needs a 'params' key"),
    ],
)
def test_settings_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: optim.SGD(_w()[0], lr=0.1),
            (
                "SGD: params must be an iterable of Tensors or of parameter-group dicts; "
                "received a "
                r"single Tensor \(wrap it in a list\)"
            ),
        ),
        (
            lambda: optim.Adam([np.ones(3)]),
            "Adam: parameters must be Tensors or Parameters; received ndarray at position 0",
        ),
        (
            lambda: optim.Adam([cl.tensor(np.arange(3))]),
            "Adam: parameters must be floating-point; received dtype int64 at position 0",
        ),
        (lambda: optim.SGD(_w(), lr="0.1"), "SGD: lr must be a number; received lr='0.1'"),
        (
            lambda: optim.SGD(_w(), lr=0.1, momentum=0.9, nesterov="yes"),
            "SGD: nesterov must be True or False; received nesterov='yes'",
        ),
    ],
)
def test_setting_types_are_checked(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_generator_of_parameters_and_repr():
    ws = [Parameter(np.ones((2, 2))), Parameter(np.ones(2))]
    opt = optim.SGD((w for w in ws), lr=0.1, momentum=0.9)
    assert len(opt.param_groups[0]["params"]) == 2
    assert repr(opt) == "SGD(lr=0.1, momentum=0.9; 2 parameters)"
    assert repr(optim.Adam([{"params": ws[:1]}, {"params": ws[1:], "lr": 0.1}])) == (
        "Adam(group 0: 1 parameters, lr=0.001; group 1: 1 parameters, lr=0.1)"
    )
