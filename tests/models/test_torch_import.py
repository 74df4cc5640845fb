"""PyTorch weight import: the same network in PyTorch (torchvision's names, written out in
_torch_zoo.py) and in cnnlab, weights copied across, outputs compared (float32, 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import models, nn
from cnnlab.nn.module import LoadResult
from tests.models import _torch_zoo
from tests.models._torch_zoo import numpy_state, randomize_batch_norm

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def zoo(torch):
    return _torch_zoo.make(torch)


def outputs(torch, tmodel, ours, x):
    tmodel.eval()
    ours.eval()
    with torch.no_grad():
        theirs = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    with cl.no_grad():
        mine = ours(cl.tensor(x)).numpy()
    return mine, theirs


def assert_close(mine, theirs, rel=1e-4):
    assert mine.shape == theirs.shape
    scale = np.max(np.abs(theirs))
    assert scale > 0
    assert np.max(np.abs(mine - theirs)) <= rel * scale


def images(n, size, c=3):
    return RNG.normal(size=(n, size, size, c)).astype(np.float32)


@pytest.mark.parametrize("variant", ["modern", "classic"])
def test_lenet5(torch, zoo, variant):
    torch.manual_seed(0)
    tmodel = zoo.LeNet5(classic=variant == "classic")
    ours = models.lenet5(variant=variant, init="zeros")
    result = models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    assert result == LoadResult([], [])
    x = images(3, 28 if variant == "modern" else 32, 1)
    assert_close(*outputs(torch, tmodel, ours, x))


def test_alexnet_224_small_width_tensors_given_directly(torch, zoo):
    torch.manual_seed(1)
    tmodel = zoo.AlexNet(7, width=0.0625, hidden=32, pooled=6)
    ours = models.alexnet(7, width=0.0625, hidden=32, init="zeros")
    # torch tensors (with .numpy()) are accepted as they are
    models.load_torch_state_dict(ours, tmodel.state_dict())
    assert_close(*outputs(torch, tmodel, ours, images(2, 224)))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg11_224_small_width(torch, zoo, batch_norm):
    torch.manual_seed(2)
    tmodel = zoo.VGG(11, 5, width=0.0625, hidden=16, batch_norm=batch_norm)
    randomize_batch_norm(torch, tmodel)
    ours = models.get("vgg11_bn" if batch_norm else "vgg11", num_classes=5, width=0.0625,
                      hidden=16, init="zeros")
    models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    assert ours.flatten_inputs == {"classifier.0": (7, 7, 32)}  # the 7x7 map: rows permuted
    assert_close(*outputs(torch, tmodel, ours, images(2, 224)))


def test_vgg11_small_input(torch, zoo):
    # at 32x32 the features end 1x1; torchvision's adaptive pool would tile that to 7x7, the
    # zoo takes the 1x1 map as it is: the torch model here pools to 1x1 likewise
    torch.manual_seed(3)
    tmodel = zoo.VGG(11, 10, width=0.125, hidden=32, pooled=1)
    ours = models.vgg11(10, input_size=32, width=0.125, hidden=32, init="zeros")
    models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    assert_close(*outputs(torch, tmodel, ours, images(2, 32)))


@pytest.mark.parametrize("depth, width", [(18, 0.125), (50, 0.0625)])
def test_resnet(torch, zoo, depth, width):
    torch.manual_seed(4)
    block, layers = {18: (zoo.BasicBlock, [2, 2, 2, 2]), 50: (zoo.Bottleneck, [3, 4, 6, 3])}[depth]
    tmodel = zoo.ResNet(block, layers, 6, width)
    randomize_batch_norm(torch, tmodel)
    ours = models.get(f"resnet{depth}", num_classes=6, width=width, init="zeros")
    result = models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    assert result == LoadResult([], [])
    assert_close(*outputs(torch, tmodel, ours, images(2, 64)))


def test_resnet20_option_a(torch, zoo):
    torch.manual_seed(5)
    tmodel = zoo.CifarResNet(20)
    randomize_batch_norm(torch, tmodel)
    ours = models.resnet20(init="zeros")
    # the reference implementation calls the head "linear": arch "resnet20" maps it to "fc"
    models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()), arch="resnet20")
    x = images(2, 32)
    assert_close(*outputs(torch, tmodel, ours, x))


def test_resnet20_training_mode_output_and_gradients(torch, zoo):
    torch.manual_seed(6)
    tmodel = zoo.CifarResNet(20).train()
    ours = models.resnet20(init="zeros").train()
    models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    x = images(4, 16)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    theirs = tmodel(xt)
    xc = cl.tensor(x, requires_grad=True)
    mine = ours(xc)
    assert_close(mine.numpy(), theirs.detach().numpy())
    v = RNG.normal(size=theirs.shape).astype(np.float32)
    theirs.backward(torch.from_numpy(v))
    mine.backward(v)
    assert_close(xc.grad, xt.grad.numpy().transpose(0, 2, 3, 1))
    assert_close(ours.conv1.weight.grad, tmodel.conv1.weight.grad.numpy().transpose(2, 3, 1, 0))
    assert_close(ours.layer3[0].bn2.gamma.grad, tmodel.layer3[0].bn2.weight.grad.numpy())
    assert_close(ours.fc.weight.grad, tmodel.linear.weight.grad.numpy().T)


def test_googlenet_torchvision_variant(torch, zoo):
    torch.manual_seed(7)
    tmodel = zoo.GoogLeNet(8, width=0.125, aux_logits=True)
    randomize_batch_norm(torch, tmodel)
    ours = models.googlenet(8, variant="torchvision", aux_logits=True, width=0.125,
                            init="zeros")
    result = models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    assert result == LoadResult([], [])
    assert_close(*outputs(torch, tmodel, ours, images(2, 64)))
    # the auxiliary heads (eval mode: no dropout), on a 4a-sized map: their fc1 follows a
    # flatten of a 4x4 map, so its rows were permuted
    for name, c in (("aux1", 64), ("aux2", 66)):
        m = images(2, 6, c)
        assert_close(*outputs(torch, getattr(tmodel, name), getattr(ours, name), m))


def test_googlenet_transform_input(torch, zoo):
    torch.manual_seed(8)
    tmodel = zoo.GoogLeNet(4, width=0.125, transform_input=True)
    ours = models.googlenet(4, variant="torchvision", width=0.125, transform_input=True,
                            init="zeros")
    models.load_torch_state_dict(ours, numpy_state(tmodel.state_dict()))
    assert_close(*outputs(torch, tmodel, ours, images(2, 32)))


@pytest.mark.parametrize("build", [
    lambda zoo: (zoo.LeNet5(), models.lenet5(seed=9), 28, 1),
    lambda zoo: (zoo.VGG(11, 5, width=0.0625, hidden=16, batch_norm=True),
                 models.vgg11_bn(5, width=0.0625, hidden=16, seed=9), 224, 3),
    lambda zoo: (zoo.ResNet(zoo.BasicBlock, [2, 2, 2, 2], 6, 0.125),
                 models.resnet18(6, width=0.125, seed=9), 64, 3),
])
def test_export_to_torch_round_trip(torch, zoo, build):
    tmodel, ours, size, c = build(zoo)
    for i, m in enumerate(ours.modules()):  # non-trivial batch-norm state to carry across
        if isinstance(m, nn.BatchNorm2D):
            m.running_var = m.running_var + 0.5
            m.running_mean = m.running_mean + 0.1 * (i % 3)
            m.beta.data = m.beta.data + 0.2
    sd = models.torch_state_dict(ours)
    missing, unexpected = tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()},
                                                 strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    assert_close(*outputs(torch, tmodel, ours, images(2, size, c)))
    # and back: the import of the export is the identity
    before = ours.state_dict()
    models.load_torch_state_dict(ours, sd)
    after = ours.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------------ errors
def test_errors_name_the_entry_and_shapes(torch, zoo):
    tmodel = zoo.LeNet5()
    sd = numpy_state(tmodel.state_dict())
    ours = models.lenet5(seed=0)
    before = ours.state_dict()
    wrong = dict(sd, **{"features.3.weight": np.zeros((16, 5, 5, 5), np.float32)})
    with pytest.raises(ValueError, match=r"parameter 'features.3.weight' has shape \(5, 5, 6, 16\) "
                                         r"in the model but \(5, 5, 5, 16\)"):
        models.load_torch_state_dict(ours, wrong)
    assert all(np.array_equal(before[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(ValueError, match=r"missing \['classifier.4.weight'\]"):
        models.load_torch_state_dict(ours, {k: v for k, v in sd.items()
                                            if k != "classifier.4.weight"})
    extra = dict(sd, **{"extra.weight": np.zeros(3, np.float32)})
    result = models.load_torch_state_dict(ours, extra, strict=False)
    assert result.unexpected == ["extra.weight"]
    with pytest.raises(ValueError, match=r"load_torch_state_dict: unknown arch 'lenet'"):
        models.load_torch_state_dict(ours, sd, arch="lenet")
    with pytest.raises(TypeError, match=r"load_torch_state_dict: state_dict must be a mapping"):
        models.load_torch_state_dict(ours, [1, 2])
    small = models.lenet5(input_size=32, init="zeros")  # flattens 6x6x16, not 5x5x16
    with pytest.raises(ValueError, match=r"classifier.0.weight has 400 inputs in the state dict, "
                                         r"but the model flattens a 6x6x16 map"):
        models.load_torch_state_dict(small, sd)
    with pytest.raises(ValueError, match=r"features.0.weight should be a 4-D OIHW conv weight"):
        models.load_torch_state_dict(ours, dict(sd, **{"features.0.weight": np.zeros((6, 25))}))
