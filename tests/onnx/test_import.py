"""Import: real CNNs written in PyTorch, exported by both of PyTorch's exporters, load as
cnnlab models that give PyTorch's outputs; a cnnlab -> ONNX -> cnnlab round trip is exact;
an imported model trains, fine-tunes, summarizes and checkpoints like any cnnlab model.

torchvision is not used: PyPI's torchvision 0.28.0 (the release for torch 2.13) installs beside
torch 2.13.0+cpu but does not import with it (its compiled operators are built for the CUDA
torch), so the models are the torchvision-compatible definitions of tests/models/_torch_zoo.py
(the same module names and layers as torchvision's), with random weights.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import nn
from tests.models._torch_zoo import make, randomize_batch_norm
from tests.onnx.test_export import rel_err, zoo_model

DYNAMO = [False] + ([True] if importlib.util.find_spec("onnxscript") else [])


def torch_model(torch, name):
    z = make(torch)
    torch.manual_seed(0)
    # every layer at full width; small images, and VGG-11's hidden layers 256 wide (4096 in
    # torchvision) to keep its classifier small
    if name == "resnet18":
        model, size = z.ResNet(z.BasicBlock, [2, 2, 2, 2], 1000, 1.0), 64
    elif name == "vgg11":  # features end at 2x2: adaptive pooling to 2x2 exports as a no-op
        model, size = z.VGG(11, 1000, 1.0, 256, pooled=2), 64
    else:
        model, size = z.GoogLeNet(1000, 1.0), 96
    randomize_batch_norm(torch, model)
    return model.eval(), size


@pytest.mark.parametrize("dynamo", DYNAMO, ids=lambda d: "dynamo" if d else "torchscript")
@pytest.mark.parametrize("name", ["resnet18", "vgg11", "googlenet"])
def test_pytorch_exports_import_and_match_pytorch(name, dynamo, torch, onnx, tmp_path):
    import cnnlab.onnx

    model, size = torch_model(torch, name)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    path = tmp_path / f"{name}.onnx"
    kw = {"dynamo": True, "external_data": False} if dynamo else {"dynamo": False}
    torch.onnx.export(model, (x,), str(path), opset_version=18 if dynamo else 17, **kw)
    imported = cnnlab.onnx.load(path)
    with cl.no_grad():
        got = imported(x.numpy().transpose(0, 2, 3, 1)).numpy()  # cnnlab takes NHWC
    assert rel_err(got, want) < 1e-5
    # the layout is converted once, at import: no transpose runs inside the imported model
    # (the flatten before the classifier reads features in cnnlab's order; its weights were
    # permuted to match)
    assert [s.op for s in imported._steps if s.op == "layout"] == []
    # the weights are cnnlab layers: as many parameters as the (BN-folded) graph's weights
    graph = onnx.load(str(path)).graph
    n_weights = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type == 1)
    assert sum(p.size for p in imported.parameters()) == n_weights


def test_dynamo_export_with_external_data_loads(torch, tmp_path):
    if not importlib.util.find_spec("onnxscript"):
        pytest.skip("onnxscript (PyTorch's dynamo exporter) is not installed")
    import cnnlab.onnx

    model, size = torch_model(torch, "resnet18")
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    torch.onnx.export(model, (x,), str(tmp_path / "r.onnx"), dynamo=True, external_data=True)
    assert (tmp_path / "r.onnx.data").exists()
    with torch.no_grad():
        want = model(x).numpy()
    got = cnnlab.onnx.load(tmp_path / "r.onnx")(x.numpy().transpose(0, 2, 3, 1)).numpy()
    assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "resnet18", "vgg11_bn", "googlenet",
                                  "alexnet"])
def test_round_trip_is_exact(name, tmp_path, onnx):
    import cnnlab.onnx

    model, shape = zoo_model(name)
    x = np.random.default_rng(5).standard_normal((2, *shape)).astype(np.float32)
    cnnlab.onnx.export(model, tmp_path / "m.onnx", shape)
    back = cnnlab.onnx.load(tmp_path / "m.onnx")
    with cl.no_grad():
        want = model(cl.tensor(x)).numpy()
        got = back(cl.tensor(x)).numpy()
    assert np.array_equal(got, want)  # bit for bit
    # the same weights, under the same names less the dots of nesting
    theirs = {k.replace(".", "_"): v for k, v in model.state_dict().items()}
    ours = {k.replace(".", "_"): v for k, v in back.state_dict().items()}
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_imported_model_fine_tunes_summarizes_and_checkpoints(tmp_path, onnx):
    import cnnlab.onnx
    from cnnlab import functional as F
    from cnnlab import models, optim
    from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint

    model, shape = zoo_model("resnet20")
    cnnlab.onnx.export(model, tmp_path / "m.onnx", shape)
    net = cnnlab.onnx.load(tmp_path / "m.onnx")
    # summary: the same parameter count and MACs as the model it came from
    s_net, s_orig = nn.summary(net, shape), nn.summary(model, shape)
    assert s_net.total_params == s_orig.total_params == 269_722
    assert s_net.total_macs == s_orig.total_macs
    # fine-tune: a new 3-class head, the rest frozen, one step of SGD changes only the head
    models.replace_head(net, 3, seed=0)
    models.freeze(net, *[n for n, m in net.named_children()
                         if n != net.head_name and list(m.parameters())])
    net.train()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, *shape)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    opt = optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    loss = F.cross_entropy(net(cl.tensor(x)), y)
    loss.backward()
    opt.step()
    changed = {k for k, v in net.state_dict().items() if not np.array_equal(v, before[k])}
    assert changed == {f"{net.head_name}.weight", f"{net.head_name}.bias"}
    assert net(cl.tensor(x)).shape == (8, 3)
    # checkpoint: saved and loaded into a fresh import with the same head
    save_checkpoint(tmp_path / "ck.npz", net)
    again = models.replace_head(cnnlab.onnx.load(tmp_path / "m.onnx"), 3, seed=1)
    again.load_state_dict(load_checkpoint(tmp_path / "ck.npz")["model"])
    net.eval(), again.eval()
    with cl.no_grad():
        assert np.array_equal(again(cl.tensor(x)).numpy(), net(cl.tensor(x)).numpy())


def test_imported_model_gradients_match_finite_differences(onnx, tmp_path):
    """The imported graph is differentiable end to end (float64 gradcheck)."""
    import cnnlab.onnx

    model = nn.Sequential(nn.Conv2D(2, 3, 3, padding=1, seed=0), nn.ReLU(),
                          nn.MaxPool2D(2), nn.Flatten(), nn.Dense(12, 2, seed=1))
    model.eval()
    cnnlab.onnx.export(model, tmp_path / "m.onnx", (4, 4, 2))
    net = cnnlab.onnx.load(tmp_path / "m.onnx").double()
    net.train()
    x = cl.tensor(np.random.default_rng(7).standard_normal((2, 4, 4, 2)), requires_grad=True)
    params = [x, *net.parameters()]
    assert cl.gradcheck(lambda *_: net(x).sum(), params) < 1e-7


def test_input_shape_is_checked(onnx, tmp_path):
    import cnnlab.onnx

    model, shape = zoo_model("lenet5")
    cnnlab.onnx.export(model, tmp_path / "m.onnx", shape)
    net = cnnlab.onnx.load(tmp_path / "m.onnx")
    assert net.input_shape == (28, 28, 1)
    with pytest.raises(ValueError, match=r"input 'input' must have shape \(N, 28, 28, 1\) "
                                         r"\(images channels-last, NHWC\); received "
                                         r"\(2, 1, 28, 28\)"):
        net(np.zeros((2, 1, 28, 28), np.float32))


def test_imported_model_runs_in_a_predictor_and_in_float64(onnx, tmp_path):
    import cnnlab.onnx

    model, shape = zoo_model("resnet20")
    cnnlab.onnx.export(model, tmp_path / "m.onnx", shape)
    net = cnnlab.onnx.load(tmp_path / "m.onnx")
    x = np.random.default_rng(9).standard_normal((4, *shape)).astype(np.float32)
    with cl.no_grad():
        want = net(cl.tensor(x)).numpy()
    got = np.asarray(nn.Predictor(net)(x))  # traced, batch norm folded: rounding differs
    assert rel_err(got, want) < 1e-5
    net64 = cnnlab.onnx.load(tmp_path / "m.onnx").double()
    with cl.no_grad():
        y64 = net64(cl.tensor(x.astype(np.float64))).numpy()
    assert y64.dtype == np.float64 and rel_err(y64, want) < 1e-5


def test_load_checks_its_layout_argument(onnx, tmp_path):
    import cnnlab.onnx

    model, shape = zoo_model("lenet5")
    cnnlab.onnx.export(model, tmp_path / "m.onnx", shape)
    with pytest.raises(ValueError, match="layout must be 'nhwc' or 'onnx'; received 'nchw'"):
        cnnlab.onnx.load(tmp_path / "m.onnx", layout="nchw")
    net = cnnlab.onnx.load(tmp_path / "m.onnx", layout="onnx")  # ONNX's NCHW, as exported
    x = np.random.default_rng(10).standard_normal((2, *shape)).astype(np.float32)
    with cl.no_grad():
        assert np.array_equal(net(x.transpose(0, 3, 1, 2)).numpy(), model(cl.tensor(x)).numpy())
