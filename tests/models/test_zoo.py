"""The zoo: exact parameter counts, nn.summary totals, one training step per model, registry.

Counts are checked against the published references (papers, torchvision's documentation)
and, where no reference is published, against closed-form sums written out here. Big models
are built with ``init="zeros"`` (NumPy allocates zero pages lazily) so that counting costs
almost nothing; forward/backward steps run at reduced width and input size.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import models, nn
from cnnlab.models.googlenet import AdaptiveAvgPool2D, MaxPool2DCeil
from cnnlab.models.resnet import BasicBlock, Bottleneck
from cnnlab.models.resnet_cifar import ShortcutA


def n_params(model) -> int:
    return int(sum(p.size for p in model.parameters()))


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def dense(fin, fout):
    return fin * fout + fout


def cifar_resnet_count(depth, num_classes=10):
    """6n+2 CIFAR ResNet with option A: convs without bias, BN (2 per channel), fc."""
    n = (depth - 2) // 6
    total = conv(3, 3, 16, bias=False) + 2 * 16
    cin = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += conv(3, cin, c, False) + 2 * c + conv(3, c, c, False) + 2 * c
            cin = c
    return total + dense(64, num_classes)


def aux_count(cin, num_classes=1000, bn=True):
    return conv(1, cin, 128, not bn) + (256 if bn else 0) + dense(2048, 1024) + dense(
        1024, num_classes
    )


# name, kwargs, reference count (224x224x3 and 1000 classes unless the kwargs say otherwise)
REFERENCE_COUNTS = [
    ("lenet5", {}, 61_706),
    ("lenet5", {"variant": "classic"}, 61_706),
    ("alexnet", {}, 61_100_840),
    ("vgg11", {}, 132_863_336),
    ("vgg13", {}, 133_047_848),
    ("vgg16", {}, 138_357_544),
    ("vgg19", {}, 143_667_240),
    ("vgg11_bn", {}, 132_868_840),
    ("vgg13_bn", {}, 133_053_736),
    ("vgg16_bn", {}, 138_365_992),
    ("vgg19_bn", {}, 143_678_248),
    ("resnet18", {}, 11_689_512),
    ("resnet34", {}, 21_797_672),
    ("resnet50", {}, 25_557_032),
    ("resnet101", {}, 44_549_160),
    ("resnet152", {}, 60_192_808),
    ("resnet20", {}, 269_722),
    ("resnet32", {}, cifar_resnet_count(32)),
    ("resnet44", {}, cifar_resnet_count(44)),
    ("resnet56", {}, cifar_resnet_count(56)),
    ("resnet110", {}, cifar_resnet_count(110)),
    ("googlenet", {}, 6_998_552),
    ("googlenet", {"variant": "torchvision"}, 6_624_904),
    ("googlenet", {"variant": "torchvision", "aux_logits": True},
     6_624_904 + aux_count(512) + aux_count(528)),
    ("googlenet", {"aux_logits": True},
     6_998_552 + aux_count(512, bn=False) + aux_count(528, bn=False)),
]


def _id(case):
    name, kw, _ = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", REFERENCE_COUNTS, ids=[_id(c) for c in REFERENCE_COUNTS])
def test_parameter_count_matches_reference(case):
    name, kw, expected = case
    model = models.get(name, init="zeros", **kw)
    assert n_params(model) == expected


def test_closed_form_counts_agree_with_published_ones():
    # the oracle formulas above reproduce the published numbers they are checked against
    assert cifar_resnet_count(20) == 269_722
    lenet = conv(5, 1, 6) + conv(5, 6, 16) + dense(400, 120) + dense(120, 84) + dense(84, 10)
    assert lenet == 61_706


SUMMARY_CASES = [
    ("lenet5", {}),
    ("lenet5", {"variant": "classic"}),
    ("alexnet", {}),
    ("vgg16", {}),
    ("resnet18", {}),
    ("resnet50", {}),
    ("resnet20", {}),
    ("googlenet", {}),
    ("googlenet", {"variant": "torchvision"}),
]


@pytest.mark.parametrize("case", SUMMARY_CASES, ids=[_id((*c, 0)) for c in SUMMARY_CASES])
def test_summary_total_agrees(case):
    name, kw = case
    model = models.get(name, init="zeros", **kw)
    expected = {c[0] + repr(c[1]): c[2] for c in REFERENCE_COUNTS}[name + repr(kw)]
    s = nn.summary(model, model.input_shape)
    assert s.total_params == expected
    assert sum(r.params for r in s.rows) == expected  # every parameter is used in the forward
    assert s.output_shape == (model.num_classes,)


def test_summary_reports_the_papers_feature_map_sizes():
    s = nn.summary(models.get("googlenet", init="zeros"), (224, 224, 3))
    shapes = {r.name: r.output_shape for r in s.rows}
    # table 1 of the GoogLeNet paper
    assert shapes["maxpool1"] == (56, 56, 64)
    assert shapes["maxpool2"] == (28, 28, 192)
    assert shapes["maxpool3"] == (14, 14, 480)
    assert shapes["maxpool4"] == (7, 7, 832)
    s = nn.summary(models.get("lenet5", init="zeros"), (28, 28, 1))
    assert [r.output_shape for r in s.rows if r.type == "MaxPool2D"] == [(14, 14, 6), (5, 5, 16)]
    s = nn.summary(models.get("alexnet", init="zeros"), (224, 224, 3))
    assert s.rows[0].output_shape == (55, 55, 64)
    assert [r.output_shape for r in s.rows if r.type == "MaxPool2D"][-1] == (6, 6, 256)


# ---------------------------------------------------------------- one training step each
STEP_CASES = [
    ("lenet5", {}, (4, 28, 28, 1)),
    ("lenet5", {"variant": "classic"}, (2, 32, 32, 1)),
    ("alexnet", {"input_size": 64, "width": 0.125, "hidden": 32, "dropout": 0.0}, (2, 64, 64, 3)),
    ("vgg11", {"input_size": 32, "width": 0.0625, "hidden": 16, "dropout": 0.0}, (2, 32, 32, 3)),
    ("vgg13", {"input_size": 32, "width": 0.0625, "hidden": 16, "dropout": 0.0}, (2, 32, 32, 3)),
    ("vgg16", {"input_size": 32, "width": 0.0625, "hidden": 16, "dropout": 0.0}, (2, 32, 32, 3)),
    ("vgg19", {"input_size": 32, "width": 0.0625, "hidden": 16, "dropout": 0.0}, (2, 32, 32, 3)),
    ("vgg16_bn", {"input_size": 32, "width": 0.0625, "hidden": 16, "dropout": 0.0}, (2, 32, 32, 3)),
    ("resnet18", {"width": 0.125}, (2, 32, 32, 3)),
    ("resnet34", {"width": 0.0625}, (2, 32, 32, 3)),
    ("resnet50", {"width": 0.0625}, (2, 32, 32, 3)),
    ("resnet20", {"width": 0.5}, (2, 16, 16, 3)),
    ("resnet32", {"width": 0.25}, (2, 16, 16, 3)),
    ("resnet56", {"width": 0.25}, (2, 16, 16, 3)),
    ("resnet20", {"width": 0.5, "shortcut": "B"}, (2, 16, 16, 3)),
    ("googlenet", {"width": 0.125, "dropout": 0.0}, (2, 32, 32, 3)),
    ("googlenet", {"width": 0.125, "variant": "torchvision", "dropout": 0.0}, (2, 32, 32, 3)),
    # a width whose rounding makes a module's in-channels differ from the table's times width
    ("googlenet", {"width": 0.1, "dropout": 0.0}, (2, 32, 32, 3)),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=[_id((*c[:2], 0)) for c in STEP_CASES])
def test_forward_backward_step(case):
    name, kw, shape = case
    model = models.get(name, num_classes=5, in_channels=shape[-1], seed=0, **kw)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    y = np.arange(shape[0]) % 5
    logits = model(cl.tensor(x))
    assert logits.shape == (shape[0], 5)
    assert logits.dtype == np.float32
    loss = F.cross_entropy(logits, y)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.shape == p.shape, pname
        assert np.all(np.isfinite(p.grad)), pname
    # a short step against the gradient lowers the loss by about step * |g| (float64, step
    # length 1e-5 in parameter space, eval mode: batch norm with fixed statistics keeps the
    # loss smooth, where batch statistics of two images are not)
    model.double().eval()
    x64 = cl.tensor(x.astype(np.float64))
    model.zero_grad()
    before = F.cross_entropy(model(x64), y)
    before.backward()
    norm = np.sqrt(sum(float(np.sum(p.grad**2)) for p in model.parameters()))
    for p in model.parameters():
        p.data -= 1e-5 / norm * p.grad
    after = float(F.cross_entropy(model(x64), y).data)
    assert after < float(before.data) - 0.5e-5 * norm


@pytest.mark.parametrize("variant, size", [("torchvision", 64), ("paper", 224)])
def test_googlenet_aux_heads_in_training_only(variant, size):
    # the paper's auxiliary pool is 5x5/3 (made for 14x14 maps: 224 inputs); torchvision's
    # is adaptive
    model = models.get("googlenet", num_classes=4, width=0.0625, aux_logits=True, seed=0,
                       variant=variant)
    x = cl.tensor(np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32))
    out = model(x)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 4)] * 3
    loss = models.googlenet_loss(out, np.array([0, 3]))
    ce = [float(F.cross_entropy(o, np.array([0, 3])).data) for o in out]
    assert float(loss.data) == pytest.approx(ce[0] + 0.3 * (ce[1] + ce[2]), rel=1e-6)
    loss.backward()
    assert model.aux1.fc2.weight.grad is not None
    model.eval()
    assert model(x).shape == (2, 4)


def test_float64_and_seed_reproducibility():
    a = models.get("resnet20", width=0.25, seed=3, dtype=np.float64)
    b = models.get("resnet20", width=0.25, seed=3, dtype=np.float64)
    c = models.get("resnet20", width=0.25, seed=4, dtype=np.float64)
    assert all(p.dtype == np.float64 for p in a.parameters())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert not np.array_equal(sa["conv1.weight"], sc["conv1.weight"])
    y = a(cl.tensor(np.zeros((1, 32, 32, 3))))
    assert y.dtype == np.float64


def test_width_scales_channels_and_input_size_sets_classifier():
    model = models.get("vgg11", num_classes=3, input_size=64, width=0.25, hidden=8, seed=0)
    assert model.features[0].weight.shape == (3, 3, 3, 16)
    assert model.classifier[0].weight.shape == (2 * 2 * 128, 8)
    assert model.flatten_inputs == {"classifier.0": (2, 2, 128)}
    assert model.input_shape == (64, 64, 3)


def test_torchvision_names():
    names = [n for n, _ in models.get("resnet18", init="zeros").named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.gamma", "bn1.beta"]
    assert "layer2.0.downsample.0.weight" in names and names[-2:] == ["fc.weight", "fc.bias"]
    names = [n for n, _ in models.get("googlenet", variant="torchvision",
                                      init="zeros").named_parameters()]
    assert "inception3a.branch2.1.conv.weight" in names
    assert "inception3a.branch4.1.bn.gamma" in names
    names = [n for n, _ in models.get("alexnet", init="zeros").named_parameters()]
    assert names[:2] == ["features.0.weight", "features.0.bias"]
    assert names[-2:] == ["classifier.6.weight", "classifier.6.bias"]


def test_lenet_variants_layers():
    modern = models.lenet5()
    classic = models.lenet5(variant="classic")
    assert isinstance(modern.features[1], nn.ReLU) and isinstance(modern.features[2], nn.MaxPool2D)
    assert isinstance(classic.features[1], nn.Tanh) and isinstance(classic.features[2],
                                                                    nn.AvgPool2D)
    assert modern.input_shape == (28, 28, 1) and classic.input_shape == (32, 32, 1)


# ---------------------------------------------------------------- registry and errors
def test_registry():
    assert set(models.names()) >= {"lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
                                   "resnet18", "resnet34", "resnet50", "resnet20", "resnet32",
                                   "resnet56", "googlenet"}
    model = models.get("resnet20", num_classes=3, width=0.25, seed=0)
    assert model.config == {"name": "resnet20", "num_classes": 3, "width": 0.25, "seed": 0}
    again = models.get(**model.config)
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(),
                                                   again.state_dict().values()))
    with pytest.raises(ValueError, match=r"models.get: unknown model 'resnet19'; the models are"):
        models.get("resnet19")


@pytest.mark.parametrize("call, match", [
    (lambda: models.alexnet(input_size=32, init="zeros"),
     r"alexnet: input_size is too small: the feature map would be 1x1 before layer features.12"),
    (lambda: models.lenet5(variant="old"), r"lenet5: variant must be 'modern' or 'classic'"),
    (lambda: models.vgg(12), r"vgg: depth must be one of \[11, 13, 16, 19\]"),
    (lambda: models.resnet(20), r"resnet: depth must be one of"),
    (lambda: models.resnet_cifar(21), r"resnet_cifar: depth must be 6n \+ 2"),
    (lambda: models.resnet20(num_classes=0), r"resnet20: num_classes must be a positive int"),
    (lambda: models.resnet20(width=0), r"resnet20: width must be a positive number"),
    (lambda: models.resnet20(input_size=(32,)), r"resnet20: input_size must be a positive int"),
    (lambda: models.googlenet(variant="v3"), r"googlenet: variant must be 'paper'"),
    (lambda: models.resnet20(shortcut="C"), r"resnet20: shortcut must be 'A' or 'B'"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_fixed_size_models_name_the_input_they_need():
    with pytest.raises(ValueError, match=r"LeNet5: built for inputs \(N, 28, 28, 1\) .* "
                                         r"received shape \(2, 32, 32, 1\)"):
        models.lenet5(seed=0)(cl.tensor(np.zeros((2, 32, 32, 1), np.float32)))


def test_bad_dtype_and_seed():
    with pytest.raises(TypeError, match=r"lenet5: dtype must be float32 or float64"):
        models.lenet5(dtype=np.int32)
    with pytest.raises(TypeError, match=r"lenet5: seed must be an int, None or a numpy"):
        models.lenet5(seed="a")


# ---------------------------------------------------------------- the zoo's own modules
def test_shortcut_a_against_loops():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 5, 4))
    y = ShortcutA(4, 8, stride=2)(cl.tensor(x)).numpy()
    expected = np.zeros((2, 3, 3, 8))
    for n in range(2):
        for i in range(3):
            for j in range(3):
                for c in range(4):
                    expected[n, i, j, c + 2] = x[n, 2 * i, 2 * j, c]
    np.testing.assert_array_equal(y, expected)
    assert cl.gradcheck(lambda t: ShortcutA(4, 8, 2)(t), [x]) < 1e-7
    assert cl.gradcheck(lambda t: ShortcutA(4, 7, 1)(t), [x]) < 1e-7
    with pytest.raises(ValueError, match=r"ShortcutA: expected an \(N, H, W, 4\) input"):
        ShortcutA(4, 8)(cl.tensor(np.zeros((1, 4, 4, 3))))
    with pytest.raises(ValueError, match=r"ShortcutA: out_channels must be at least"):
        ShortcutA(8, 4)


def test_residual_blocks_gradcheck():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 3))
    for block in (BasicBlock(3, 4, stride=2), Bottleneck(3, 2, stride=1)):
        block.double()
        assert cl.gradcheck(lambda t, b=block: b(t), [x]) < 1e-7


def _ceil_pool_oracle(x, k, s, p):
    """Max pooling with PyTorch's ceil_mode rule, by loops over the output."""
    n, h, w, c = x.shape

    def size(m):
        out = -(-(m + 2 * p - k) // s) + 1
        return out - 1 if (out - 1) * s >= m + p else out

    oh, ow = size(h), size(w)
    y = np.empty((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s - p, j * s - p
            rows = slice(max(r0, 0), min(r0 + k, h))
            cols = slice(max(c0, 0), min(c0 + k, w))
            y[:, i, j, :] = x[:, rows, cols, :].max(axis=(1, 2))
    return y


@pytest.mark.parametrize("hw, k, s, p", [((7, 7), 3, 2, 0), ((112, 9), 3, 2, 0),
                                         ((6, 5), 2, 2, 0), ((8, 7), 3, 2, 1), ((2, 2), 3, 2, 0)])
def test_max_pool_ceil_against_loops(hw, k, s, p):
    x = np.random.default_rng(0).normal(size=(2, *hw, 3))
    y = MaxPool2DCeil(k, s, p)(cl.tensor(x)).numpy()
    np.testing.assert_array_equal(y, _ceil_pool_oracle(x, k, s, p))


def test_max_pool_ceil_gradcheck_and_errors():
    x = np.random.default_rng(0).normal(size=(1, 7, 6, 2))
    assert cl.gradcheck(lambda t: MaxPool2DCeil(3, 2)(t), [x]) < 1e-7
    with pytest.raises(ValueError, match=r"MaxPool2DCeil: the input 1x1 is too small"):
        MaxPool2DCeil(3, 2)(cl.tensor(np.zeros((1, 1, 1, 2))))


def test_adaptive_avg_pool_against_loops():
    x = np.random.default_rng(0).normal(size=(2, 14, 9, 3))
    y = AdaptiveAvgPool2D(4)(cl.tensor(x)).numpy()
    for i in range(4):
        for j in range(4):
            r0, r1 = (i * 14) // 4, -(-((i + 1) * 14) // 4)
            c0, c1 = (j * 9) // 4, -(-((j + 1) * 9) // 4)
            np.testing.assert_allclose(y[:, i, j], x[:, r0:r1, c0:c1].mean(axis=(1, 2)),
                                       rtol=1e-12)
    assert cl.gradcheck(lambda t: AdaptiveAvgPool2D((3, 2))(t), [x[:1, :7, :5, :2]]) < 1e-7
    np.testing.assert_allclose(AdaptiveAvgPool2D(2)(cl.tensor(x[:, :8, :8])).numpy(),
                               x[:, :8, :8].reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4)),
                               rtol=1e-12)


# ------------------------------------------------------------------ issue 17: small inputs
@pytest.mark.parametrize("variant, aux, smallest, sizes",
                         [("paper", False, 31, "the smallest is 31x31"),
                          ("torchvision", True, 28, ""),
                          ("paper", True, 223, "sizes 223 to 270 work")])
def test_googlenet_too_small_input_is_refused_when_built(variant, aux, smallest, sizes):
    """MNIST's 28x28 empties the map before a pool: refused with the sizes that work (checked
    here by building and running the network: the oracle is the forward pass itself)."""
    if smallest > 28:
        with pytest.raises(ValueError, match=rf"^googlenet: input_size is too small: .* received "
                                             rf"input_size=28x28, {sizes}$"):
            models.googlenet(10, input_size=28, in_channels=1, width=0.125, variant=variant,
                             aux_logits=aux)
    net = models.googlenet(10, input_size=smallest, in_channels=1, width=0.125, seed=0,
                           variant=variant, aux_logits=aux)
    out = net(cl.tensor(np.ones((2, smallest, smallest, 1), np.float32)))  # training mode
    assert [o.shape for o in out] == [(2, 10)] * 3 if aux else out.shape == (2, 10)
    with pytest.raises(ValueError):
        MaxPool2DCeil(3, 2)(cl.tensor(np.zeros((1, 1, 1, 1))))  # what 30x30 would hit


def test_default_input_shape_is_what_the_builder_records():
    for name in models.names():
        assert models.default_input_shape(name) == tuple(models.get(name, init="zeros").input_shape)
    assert models.default_input_shape("lenet5") == (28, 28, 1)
