"""Transfer learning: loading, head replacement, freezing, and fine-tuning with fit."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import models, nn, optim
from cnnlab.models.transfer import FrozenBatchNorm2D
from cnnlab.train import fit, predict


# ------------------------------------------------------------------------ synthetic images
def quadrant_images(n, size=16, channels=1, seed=0):
    """A bright 4x4 square in one of the four quadrants, on noise; label = the quadrant."""
    rng = np.random.default_rng(seed)
    x = 0.3 * rng.normal(size=(n, size, size, channels)).astype(np.float32)
    q = rng.integers(0, 4, size=n)
    h = size // 2
    for i in range(n):
        r = (q[i] // 2) * h + rng.integers(0, h - 4 + 1)
        c = (q[i] % 2) * h + rng.integers(0, h - 4 + 1)
        x[i, r:r + 4, c:c + 4, :] += 1.5
    return x, q


# the new task: top-left, (top-right or bottom-left), bottom-right
TASK_B = np.array([0, 1, 1, 2])


def accuracy(model, x, y):
    return float(np.mean(predict(model, x).argmax(axis=1) == y))


@pytest.fixture(scope="module")
def pretrained_state():
    """LeNet-5 (16x16 inputs) trained on the 4-quadrant task; its state dict."""
    x, y = quadrant_images(512, seed=1)
    model = models.lenet5(4, input_size=16, seed=0)
    fit(model, (x, y), optimizer=optim.Adam(model.parameters(), lr=3e-3), epochs=4,
        batch_size=32, verbose=False)
    xt, yt = quadrant_images(256, seed=2)
    assert accuracy(model, xt, yt) > 0.9  # the source task was learned
    return model.state_dict()


def test_fine_tune_head_only(pretrained_state):
    model = models.lenet5(4, input_size=16, seed=5)
    info = models.prepare_fine_tuning(model, pretrained_state, num_classes=3, seed=0,
                                      freeze_until_layer="classifier.2")
    assert info["loaded"] == list(pretrained_state)  # same architecture: everything loads
    assert info["skipped"] == [] and info["head"] == "classifier.4"
    assert info["trainable"] == ["classifier.4.weight", "classifier.4.bias"]
    assert model.num_classes == 3
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    assert len(frozen) == 8

    x, q = quadrant_images(384, seed=3)
    xt, qt = quadrant_images(256, seed=4)
    before = accuracy(model, xt, TASK_B[qt])
    head_before = model.classifier[4].weight.data.copy()
    trainable = [p for p in model.parameters() if p.requires_grad]
    history = fit(model, (x, TASK_B[q]), optimizer=optim.Adam(trainable, lr=1e-2), epochs=4,
                  batch_size=32, verbose=False)
    after = accuracy(model, xt, TASK_B[qt])

    for n, p in model.named_parameters():
        if n in frozen:
            assert np.array_equal(p.data, frozen[n]), n  # bitwise unchanged
            assert p.grad is None, n
    assert not np.array_equal(model.classifier[4].weight.data, head_before)
    assert history["loss"][-1] < history["loss"][0]
    assert after > 0.85 and after > before + 0.2


def test_fine_tune_with_the_optimizer_over_all_parameters_still_leaves_frozen_ones(
        pretrained_state):
    # frozen parameters get no gradient, so even an optimizer given every parameter (with
    # momentum and weight decay) skips them
    model = models.lenet5(3, input_size=16, seed=5)
    report = models.load_pretrained(model, pretrained_state)
    assert report.skipped == ["classifier.4.weight", "classifier.4.bias"]
    names = models.freeze(model, "features", "classifier.0")
    assert names == ["features.0.weight", "features.0.bias", "features.3.weight",
                     "features.3.bias", "classifier.0.weight", "classifier.0.bias"]
    frozen = {n: model.state_dict()[n] for n in names}
    x, q = quadrant_images(128, seed=6)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    fit(model, (x, TASK_B[q]), optimizer=opt, epochs=2, batch_size=32, verbose=False)
    state = model.state_dict()
    assert all(np.array_equal(state[n], v) for n, v in frozen.items())
    assert not np.array_equal(state["classifier.2.weight"], pretrained_state["classifier.2.weight"])


def test_batch_norm_frozen_keeps_statistics_and_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 16, 16, 3)).astype(np.float32)
    y = (x[..., 0].mean(axis=(1, 2)) > x[..., 1].mean(axis=(1, 2))).astype(int)
    model = models.resnet20(2, width=0.25, seed=0)
    for m in model.modules():  # pretend the network was trained: non-trivial statistics
        if isinstance(m, nn.BatchNorm2D):
            m.running_mean = rng.normal(size=m.channels).astype(np.float32) * 0.1
            m.running_var = rng.uniform(0.5, 1.5, m.channels).astype(np.float32)
    frozen_names = models.freeze_until(model, "layer3")
    assert frozen_names[-1] == "layer3.2.bn2.beta" and "fc.weight" not in frozen_names
    assert isinstance(model.bn1, FrozenBatchNorm2D)
    before = model.state_dict()
    history = fit(model, (x, y), optimizer=optim.Adam(model.parameters(), lr=1e-2), epochs=3,
                  batch_size=16, verbose=False)
    after = model.state_dict()
    for name in before:
        if not name.startswith("fc."):
            assert np.array_equal(before[name], after[name]), name  # buffers included
    assert not np.array_equal(before["fc.weight"], after["fc.weight"])
    assert history["loss"][-1] < history["loss"][0]
    # unfreezing brings batch statistics back
    models.unfreeze(model)
    assert type(model.bn1) is nn.BatchNorm2D and model.bn1.training
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_batch_norm_against_formula():
    bn = nn.BatchNorm2D(3)
    rng = np.random.default_rng(1)
    bn.gamma.data = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    bn.beta.data = rng.normal(size=3).astype(np.float32)
    bn.running_mean = rng.normal(size=3).astype(np.float32)
    bn.running_var = rng.uniform(0.5, 2, 3).astype(np.float32)
    net = nn.Sequential(bn)
    models.freeze(net)
    assert isinstance(net[0], FrozenBatchNorm2D) and net[0] is bn
    net.train()
    assert net.training and not bn.training
    x = rng.normal(size=(4, 2, 2, 3)).astype(np.float32)
    y = net(cl.tensor(x)).numpy()
    expected = bn.gamma.data * (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) + bn.beta.data
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert list(bn.state_dict()) == ["gamma", "beta", "running_mean", "running_var"]


# ------------------------------------------------------------------------ the pieces
def test_replace_head_variants():
    model = models.resnet20(width=0.25, seed=0, dtype=np.float64)
    old = model.fc
    assert models.replace_head(model, 7, seed=1) is model
    assert model.fc is not old and model.fc.weight.shape == (16, 7)
    assert model.fc.weight.dtype == np.float64 and model.fc.weight.requires_grad
    assert model(cl.tensor(np.zeros((2, 16, 16, 3)))).shape == (2, 7)
    assert all(p is not old.weight for p in model.parameters())
    again = models.replace_head(models.resnet20(width=0.25, seed=0), 7, seed=1)
    np.testing.assert_array_equal(again.fc.weight.data, model.fc.weight.data.astype(np.float32))

    vgg = models.vgg11(input_size=32, width=0.0625, hidden=8, seed=0)
    models.replace_head(vgg, 2)
    assert [n for n, _ in vgg.named_parameters()][-2:] == ["classifier.6.weight",
                                                          "classifier.6.bias"]
    assert vgg.classifier[6].weight.shape == (8, 2)

    g = models.googlenet(width=0.0625, aux_logits=True, variant="torchvision", init="zeros")
    models.replace_head(g, 4, seed=0)
    assert g.fc.out_features == g.aux1.fc2.out_features == g.aux2.fc2.out_features == 4

    net = nn.Sequential(nn.Flatten(), nn.Dense(12, 5, seed=0), nn.ReLU(), nn.Dense(5, 3, seed=0))
    models.replace_head(net, 6)  # no head_name: the last Dense
    assert net[3].weight.shape == (5, 6)
    with pytest.raises(TypeError, match=r"replace_head: the head '2' is a ReLU, not a Dense"):
        models.replace_head(net, 6, name="2")
    with pytest.raises(ValueError, match=r"replace_head: num_classes must be a positive int"):
        models.replace_head(net, 0)
    with pytest.raises(ValueError, match=r"replace_head: Sequential has no Dense layer"):
        models.replace_head(nn.Sequential(nn.ReLU()), 2)


def test_load_pretrained_options():
    src = models.lenet5(seed=0).state_dict()
    model = models.lenet5(3, seed=1)
    with pytest.raises(ValueError, match=r"load_pretrained: 'classifier.4.weight' has shape "
                                         r"\(84, 3\) in the model but \(84, 10\) in the state"):
        models.load_pretrained(model, src, skip_mismatched=False)
    report = models.load_pretrained(model, dict(src, extra=np.zeros(2)), exclude=("features.3",))
    assert "features.3.weight" in report.missing and report.unexpected == ["extra"]
    assert np.array_equal(model.features[0].weight.data, src["features.0.weight"])
    assert not np.array_equal(model.features[3].weight.data, src["features.3.weight"])
    with pytest.raises(ValueError, match=r"load_pretrained: strict, but these were not loaded"):
        models.load_pretrained(model, src, strict=True)
    with pytest.raises(TypeError, match=r"load_pretrained: state must be a mapping"):
        models.load_pretrained(model, [1])


def test_freeze_until_options_and_errors():
    model = models.lenet5(seed=0)
    assert models.freeze_until(model, "classifier.0", inclusive=False) == [
        "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"]
    assert model.classifier[0].weight.requires_grad
    with pytest.raises(ValueError, match=r"LeNet5 has no layer named 'classifier.9'; its "
                                         r"top-level layers are \['features', 'flatten', "):
        models.freeze_until(model, "classifier.9")
    with pytest.raises(ValueError, match=r"freeze_until: the layer 'flatten' has no parameters"):
        models.freeze_until(model, "flatten")
    with pytest.raises(ValueError, match=r"'head'"):  # nn.Module.freeze's error
        models.freeze(model, "head")
