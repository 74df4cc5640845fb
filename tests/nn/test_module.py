"""Module: automatic discovery and names, modes, buffers, state_dict, freezing, dtype, repr."""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import nn


def images(n=4, h=8, w=8, c=3, dtype=np.float32, seed=0):
    return cl.tensor(np.random.default_rng(seed).normal(size=(n, h, w, c)).astype(dtype))


def small_cnn(seed=0):
    return nn.Sequential(
        nn.Conv2D(3, 4, 3, padding="same", seed=seed),
        nn.BatchNorm2D(4),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Dropout(0.25, seed=seed),
        nn.Flatten(),
        nn.Dense(4 * 4 * 4, 5, seed=seed),
    )


class Custom(nn.Module):
    """Parameters and modules reached through attributes, lists, tuples and dicts."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.features = nn.Sequential(
            nn.Conv2D(3, 4, 3, seed=0),
            nn.Sequential(nn.Conv2D(4, 4, 1, bias=False, seed=0), nn.ReLU()),
        )
        self.blocks = [nn.Dense(2, 2, seed=0), nn.Dense(2, 2, bias=False, seed=0)]
        self.pair = (nn.Parameter(np.zeros(2, np.float32)), nn.Tanh())
        self.heads = {"cls": nn.Dense(2, 3, seed=0), "box": nn.Dense(2, 4, seed=0)}
        self.res = nn.Residual(nn.Conv2D(4, 4, 3, padding=1, seed=0), nn.Conv2D(4, 4, 1, seed=0))
        self.inception = nn.Concat(nn.Conv2D(4, 2, 1, seed=0), nn.MaxPool2D(3, 1, padding=1))
        self.not_a_param = np.ones(5)  # plain arrays are not parameters
        self.nothing = None


CUSTOM_NAMES = [
    "scale",
    "features.0.weight",
    "features.0.bias",
    "features.1.0.weight",
    "blocks.0.weight",
    "blocks.0.bias",
    "blocks.1.weight",
    "pair.0",
    "heads.cls.weight",
    "heads.cls.bias",
    "heads.box.weight",
    "heads.box.bias",
    "res.block.weight",
    "res.block.bias",
    "res.shortcut.weight",
    "res.shortcut.bias",
    "inception.0.weight",
    "inception.0.bias",
]


# ------------------------------------------------------------------ discovery
def test_named_parameters_in_definition_order_with_dotted_names():
    model = Custom()
    assert [n for n, _ in model.named_parameters()] == CUSTOM_NAMES
    assert len(list(model.parameters())) == len(CUSTOM_NAMES)
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())


def test_named_parameters_point_at_the_attributes():
    model = Custom()
    params = dict(model.named_parameters())
    assert params["features.1.0.weight"] is model.features[1][0].weight
    assert params["heads.box.bias"] is model.heads["box"].bias
    assert params["pair.0"] is model.pair[0]
    assert params["res.shortcut.weight"] is model.res.shortcut.weight


def test_children_and_named_modules():
    model = Custom()
    assert [n for n, _ in model.named_children()] == [
        "features", "blocks.0", "blocks.1", "pair.1", "heads.cls", "heads.box", "res",
        "inception",
    ]
    names = [n for n, _ in model.named_modules()]
    assert names[0] == ""
    assert "features.1.1" in names and "inception.1" in names and "res.shortcut" in names
    assert len(list(model.modules())) == len(names)
    assert list(model.children())[0] is model.features


def test_non_recursive_parameters():
    model = Custom()
    assert [n for n, _ in model.named_parameters(recurse=False)] == ["scale", "pair.0"]


def test_shared_parameter_is_listed_once():
    dense = nn.Dense(3, 3, seed=0)
    model = nn.Sequential(dense, nn.ReLU(), dense)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_reassigned_attribute_keeps_its_place_and_new_value():
    model = nn.Residual(nn.Dense(2, 2, seed=0))
    model.block = nn.Dense(2, 2, bias=False, seed=1)
    assert [n for n, _ in model.named_parameters()] == ["block.weight"]


# ------------------------------------------------------------------ containers
def test_sequential_behaves_like_a_list():
    a, b, c = nn.Conv2D(3, 4, 3, seed=0), nn.ReLU(), nn.Flatten()
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    assert list(seq[1:]) == [b, c]
    with pytest.raises(IndexError, match=r"Sequential: index 3 is out of range for 3 layers"):
        seq[3]
    with pytest.raises(TypeError, match=r"Sequential: item 3 must be a Module .*function"):
        seq.append(lambda x: x)


def test_sequential_with_names():
    seq = nn.Sequential(OrderedDict(conv=nn.Conv2D(1, 2, 3, seed=0), act=nn.ReLU()))
    assert [n for n, _ in seq.named_parameters()] == ["conv.weight", "conv.bias"]
    assert isinstance(seq["act"], nn.ReLU)
    with pytest.raises(KeyError, match=r"no layer named 'pool'"):
        seq["pool"]


def test_sequential_forward_composes():
    d1, d2 = nn.Dense(3, 4, seed=0), nn.Dense(4, 2, seed=1)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = nn.Sequential(d1, nn.ReLU(), d2)(cl.tensor(x)).numpy()
    h = np.maximum(x @ d1.weight.data + d1.bias.data, 0)
    np.testing.assert_allclose(y, h @ d2.weight.data + d2.bias.data, rtol=1e-5, atol=1e-6)


def test_module_list():
    ml = nn.ModuleList([nn.Dense(2, 2, seed=0)])
    ml.append(nn.Dense(2, 3, seed=0))
    assert len(ml) == 2 and [n for n, _ in ml.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"
    ]
    assert isinstance(ml[1], nn.Dense)
    with pytest.raises(TypeError, match=r"ModuleList: item 2 must be a Module"):
        ml.append(3)


def test_residual_adds_block_and_shortcut():
    x = images(2, 5, 5, 4, np.float64)
    block = nn.Conv2D(4, 4, 3, padding="same", seed=0, dtype=np.float64)
    np.testing.assert_array_equal(
        nn.Residual(block)(x).numpy(), block(x).numpy() + x.numpy()
    )
    short = nn.Conv2D(4, 4, 1, seed=1, dtype=np.float64)
    np.testing.assert_array_equal(
        nn.Residual(block, short)(x).numpy(), block(x).numpy() + short(x).numpy()
    )


def test_residual_shape_mismatch_names_both_shapes():
    res = nn.Residual(nn.Conv2D(4, 8, 3, padding="same", seed=0))
    with pytest.raises(ValueError, match=re.escape(
        "Residual: the block's output has shape (2, 5, 5, 8) but the input (identity shortcut) "
        "has shape (2, 5, 5, 4)"
    )):
        res(images(2, 5, 5, 4))


def test_concat_joins_branches_on_channels():
    x = images(2, 6, 6, 3, np.float64)
    b1 = nn.Conv2D(3, 2, 1, seed=0, dtype=np.float64)
    b2 = nn.Conv2D(3, 5, 3, padding="same", seed=1, dtype=np.float64)
    y = nn.Concat(b1, b2, nn.MaxPool2D(3, stride=1, padding="same"))(x).numpy()
    assert y.shape == (2, 6, 6, 10)
    np.testing.assert_array_equal(y[..., :2], b1(x).numpy())
    np.testing.assert_array_equal(y[..., 2:7], b2(x).numpy())


def test_concat_mismatch_is_explained():
    cat = nn.Concat(nn.Conv2D(3, 2, 3, seed=0), nn.Conv2D(3, 2, 1, seed=0))
    with pytest.raises(ValueError, match=re.escape(
        "Concat: the branches' outputs must have the same shape except on axis -1; "
        "received [(1, 4, 4, 2), (1, 6, 6, 2)]"
    )):
        cat(images(1, 6, 6, 3))


# ------------------------------------------------------------------ modes
def test_train_and_eval_propagate_to_every_module():
    model = Custom()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.features.eval()
    assert not model.features[1][1].training and model.res.training


def test_dropout_is_identity_in_eval_and_not_in_training():
    drop = nn.Dropout(0.5, seed=0)
    x = cl.tensor(np.ones((50, 40), np.float32))
    y = drop(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}  # inverted dropout: kept units scaled by 1/keep
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


def test_dropout_same_seed_same_masks():
    x = cl.tensor(np.ones((10, 10), np.float32))
    a, b = nn.Dropout(0.3, seed=7), nn.Dropout(0.3, seed=7)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())  # generators advance together
    assert [n for n, _ in nn.Sequential(nn.ReLU(), a).named_rngs()] == ["1"]


def test_batch_norm_training_updates_running_stats_and_eval_uses_them():
    bn = nn.BatchNorm2D(3, momentum=0.8)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 5, 5, 3))
    bn.double()
    y = bn(cl.tensor(x)).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-9, atol=1e-12)
    m = 4 * 5 * 5
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var * m / (m - 1), rtol=1e-12)

    bn.eval()
    before = (bn.running_mean.copy(), bn.running_var.copy())
    x2 = np.random.default_rng(1).normal(size=(2, 3, 3, 3))
    y2 = bn(cl.tensor(x2)).numpy()
    np.testing.assert_allclose(
        y2, (x2 - before[0]) / np.sqrt(before[1] + 1e-5), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(bn.running_mean, before[0])  # eval does not update
    np.testing.assert_array_equal(bn.running_var, before[1])


# ------------------------------------------------------------------ buffers and state_dict
def test_state_dict_names_parameters_then_buffers_and_copies():
    model = small_cnn()
    state = model.state_dict()
    assert list(state) == [
        "0.weight", "0.bias", "1.gamma", "1.beta", "6.weight", "6.bias",
        "1.running_mean", "1.running_var",
    ]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["0.weight"][...] = 0  # a copy: the model is untouched
    assert np.abs(model[0].weight.data).sum() > 0
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]


def test_state_dict_round_trip_gives_bitwise_equal_outputs():
    model = small_cnn(seed=0)
    for seed in range(3):  # training steps move the running statistics
        model(images(seed=seed))
    model.eval()
    x = images(seed=10)
    expected = model(x).numpy()

    fresh = small_cnn(seed=99)
    assert not np.array_equal(fresh.eval()(x).numpy(), expected)
    result = fresh.load_state_dict(model.state_dict())
    assert result == nn.LoadResult([], [])
    np.testing.assert_array_equal(fresh(x).numpy(), expected)
    for (n1, a), (n2, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert n1 == n2 and a.dtype == b.dtype and np.array_equal(a, b)


def test_load_state_dict_missing_key():
    model = small_cnn()
    state = model.state_dict()
    del state["6.bias"]
    with pytest.raises(ValueError, match=re.escape(
        "load_state_dict for Sequential: missing ['6.bias'] (in the model, not in the state dict)"
    )):
        model.load_state_dict(state)


def test_load_state_dict_unexpected_key():
    model = small_cnn()
    state = model.state_dict()
    state["7.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=re.escape(
        "load_state_dict for Sequential: unexpected ['7.weight'] (in the state dict, not in the "
        "model)"
    )):
        model.load_state_dict(state)


def test_load_state_dict_wrong_shape_names_parameter_and_both_shapes():
    model = small_cnn()
    state = model.state_dict()
    state["0.weight"] = np.zeros((3, 3, 3, 5), np.float32)
    with pytest.raises(ValueError, match=re.escape(
        "load_state_dict for Sequential: parameter '0.weight' has shape (3, 3, 3, 4) in the "
        "model but (3, 3, 3, 5) in the state dict"
    )):
        model.load_state_dict(state)
    state = model.state_dict()
    state["1.running_var"] = np.ones(5)
    with pytest.raises(ValueError, match=re.escape(
        "buffer '1.running_var' has shape (4,) in the model but (5,) in the state dict"
    )):
        model.load_state_dict(state, strict=False)  # shapes are checked even when not strict


def test_failed_load_changes_nothing():
    model = small_cnn(seed=0)
    before = model.state_dict()
    state = small_cnn(seed=1).state_dict()
    state["6.weight"] = np.zeros((1, 1), np.float32)  # last in order: checked before any copy
    with pytest.raises(ValueError):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_not_strict_reports_and_loads_the_rest():
    model = small_cnn(seed=0)
    state = small_cnn(seed=1).state_dict()
    del state["0.bias"]
    state["extra"] = np.zeros(1)
    result = model.load_state_dict(state, strict=False)
    assert result.missing == ["0.bias"] and result.unexpected == ["extra"]
    np.testing.assert_array_equal(model[0].weight.data, state["0.weight"])


def test_load_state_dict_converts_to_the_parameter_dtype():
    model = nn.Dense(2, 3, seed=0)
    model.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(3)})
    assert model.weight.dtype == np.float32 and model.weight.data.sum() == 6


def test_register_buffer_rejects_a_parameter_name():
    dense = nn.Dense(2, 2, seed=0)
    with pytest.raises(ValueError, match=r"register_buffer: 'weight' is already a Parameter"):
        dense.register_buffer("weight", np.zeros(2))


# ------------------------------------------------------------------ freezing
def test_freeze_by_prefix_leaves_frozen_parameters_without_grad():
    model = small_cnn()
    assert model.freeze("0") == ["0.weight", "0.bias"]
    out = model(images()).sum()
    out.backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[6].weight.grad is not None and model[1].gamma.grad is not None
    assert model.unfreeze("0") == ["0.weight", "0.bias"]
    model.zero_grad()
    model(images()).sum().backward()
    assert model[0].weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_freeze_prefix_stops_at_name_boundaries():
    model = nn.Sequential(*[nn.Dense(2, 2, seed=0) for _ in range(11)])
    assert model.freeze("1") == ["1.weight", "1.bias"]  # not 10.weight
    assert model.freeze("10.weight") == ["10.weight"]
    assert len(model.freeze()) == 22
    assert not any(p.requires_grad for p in model.parameters())


def test_freeze_unknown_prefix_is_an_error():
    with pytest.raises(ValueError, match=r"freeze: no parameter name starts with 'head'; "
                                         r"the parameters are \['weight', 'bias'\]"):
        nn.Dense(2, 2, seed=0).freeze("head")


# ------------------------------------------------------------------ dtype
def test_float32_by_default_and_astype_float64():
    model = small_cnn()
    assert model(images()).dtype == np.float32
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert all(b.dtype == np.float64 for b in model.buffers())
    assert model(images(dtype=np.float64)).dtype == np.float64
    assert model.float()[1].running_var.dtype == np.float32
    with pytest.raises(TypeError, match=r"astype: a module holds float32 or float64 values; "
                                        r"received dtype int64"):
        model.astype(np.int64)


def test_layers_take_a_dtype():
    for layer in (nn.Conv2D(1, 2, 3, dtype=np.float64), nn.Dense(2, 2, dtype=np.float64),
                  nn.BatchNorm2D(2, dtype=np.float64), nn.BatchNorm1D(2, dtype=np.float64)):
        assert all(p.dtype == np.float64 for p in layer.parameters())
    with pytest.raises(TypeError, match=r"Dense: dtype must be float32 or float64"):
        nn.Dense(2, 2, dtype=np.int32)


def test_bias_and_batch_norm_parameters_are_not_regularized():
    model = small_cnn()
    regularized = [n for n, p in model.named_parameters() if p.regularize]
    assert regularized == ["0.weight", "6.weight"]


# ------------------------------------------------------------------ repr
REPRS = [
    (nn.Conv2D(3, 16, 3, seed=0), "Conv2D(3, 16, kernel_size=3)"),
    (nn.Conv2D(3, 16, (3, 5), stride=2, padding="same", dilation=2, groups=1, bias=False),
     "Conv2D(3, 16, kernel_size=(3, 5), stride=2, padding='same', dilation=2, bias=False)"),
    (nn.Conv2D(4, 8, 3, padding=(1, 0), groups=4), "Conv2D(4, 8, kernel_size=3, "
                                                   "padding=(1, 0), groups=4)"),
    (nn.Conv2D(3, 4, 1, dtype=np.float64), "Conv2D(3, 4, kernel_size=1, dtype=float64)"),
    (nn.Dense(400, 120), "Dense(400, 120)"),
    (nn.Dense(4, 2, bias=False), "Dense(4, 2, bias=False)"),
    (nn.MaxPool2D(2), "MaxPool2D(size=2)"),
    (nn.MaxPool2D(3, stride=1, padding="same"), "MaxPool2D(size=3, stride=1, padding='same')"),
    (nn.AvgPool2D((2, 3), padding=1), "AvgPool2D(size=(2, 3), padding=1)"),
    (nn.LPPool2D(2, 3, stride=2), "LPPool2D(p=2, size=3, stride=2)"),
    (nn.GlobalAvgPool2D(), "GlobalAvgPool2D()"),
    (nn.Flatten(), "Flatten()"),
    (nn.Flatten(2), "Flatten(start_axis=2)"),
    (nn.ZeroPad2D(2), "ZeroPad2D(padding=2)"),
    (nn.ZeroPad2D((1, 2)), "ZeroPad2D(padding=(1, 2))"),
    (nn.ZeroPad2D(((0, 1), (0, 1))), "ZeroPad2D(padding=((0, 1), (0, 1)))"),
    (nn.ReLU(), "ReLU()"),
    (nn.LeakyReLU(), "LeakyReLU()"),
    (nn.LeakyReLU(0.2), "LeakyReLU(slope=0.2)"),
    (nn.Sigmoid(), "Sigmoid()"),
    (nn.Tanh(), "Tanh()"),
    (nn.Softmax(), "Softmax()"),
    (nn.Softmax(axis=1), "Softmax(axis=1)"),
    (nn.Dropout(0.5), "Dropout(rate=0.5)"),
    (nn.BatchNorm2D(16), "BatchNorm2D(16)"),
    (nn.BatchNorm2D(16, momentum=0.99, eps=1e-3), "BatchNorm2D(16, momentum=0.99, eps=0.001)"),
    (nn.BatchNorm1D(10), "BatchNorm1D(10)"),
]


@pytest.mark.parametrize("layer,text", REPRS, ids=[t for _, t in REPRS])
def test_layer_repr(layer, text):
    assert repr(layer) == text


def test_container_repr_nests_children():
    model = nn.Sequential(
        nn.Conv2D(3, 8, 3, padding="same"),
        nn.Residual(nn.Sequential(nn.Conv2D(8, 8, 3, padding=1), nn.ReLU())),
        nn.Concat(nn.Conv2D(8, 4, 1), nn.MaxPool2D(3, stride=1, padding=1), axis=3),
    )
    assert repr(model) == "\n".join([
        "Sequential(",
        "  (0): Conv2D(3, 8, kernel_size=3, padding='same')",
        "  (1): Residual(",
        "    (block): Sequential(",
        "      (0): Conv2D(8, 8, kernel_size=3, padding=1)",
        "      (1): ReLU()",
        "    )",
        "  )",
        "  (2): Concat(axis=3",
        "    (0): Conv2D(8, 4, kernel_size=1)",
        "    (1): MaxPool2D(size=3, stride=1, padding=1)",
        "  )",
        ")",
    ])
    assert repr(nn.ModuleList([nn.ReLU()])) == "ModuleList(\n  (0): ReLU()\n)"
