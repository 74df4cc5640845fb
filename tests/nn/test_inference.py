"""nn.Predictor: a model traced once per input shape, folded, fused and replayed on arrays.

The oracle is the model's own eval-mode forward, ``with cl.no_grad(): model(cl.tensor(x))``
after ``model.eval()`` (that forward is compared with PyTorch elsewhere), and, for ResNet-20,
PyTorch itself. What is tested: zoo models at batch sizes that take the prepared and the
chunked (fallback) convolution path; that batch norm is folded into the convolution before it
and ReLU fused into the step before it, and not where that step's result is read twice; that
the weights are snapshotted until ``reset()``; that the model's modes and running statistics
are left alone; that a forward computing outside cnnlab's ops is refused; outputs, dtypes,
input kinds, type errors, threads; and the ``cnnlab.tensor.record_ops`` hook the tracer uses.
A property test draws random convolution stacks.

Batch norms get non-trivial statistics before any comparison (the defaults, gamma 1, beta 0,
mean 0, var 1, would make folding an identity).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import models, nn
from cnnlab.tensor import record_ops
from tests.models import _torch_zoo

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------- helpers
def images(n, h=8, w=8, c=3, dtype=np.float32, rng=RNG):
    return rng.normal(size=(n, h, w, c)).astype(dtype)


def randomize_batch_norms(model, seed=0):
    """gamma in [0.5, 1.5], beta ~ 0.1 N(0, 1), running mean ~ 0.1 N(0, 1), var in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2D, nn.BatchNorm1D)):
            c = m.channels
            m.gamma.data[...] = rng.uniform(0.5, 1.5, c)
            m.beta.data[...] = 0.1 * rng.standard_normal(c)
            m.running_mean[...] = 0.1 * rng.standard_normal(c)
            m.running_var[...] = rng.uniform(0.5, 2.0, c)
    return model


def eval_forward(model, x):
    """The oracle: the model's own eval-mode forward, as ndarray(s)."""
    model.eval()
    with cl.no_grad():
        out = model(cl.tensor(x))
    return tuple(t.numpy() for t in out) if isinstance(out, tuple) else out.numpy()


def assert_matches(got, ref):
    assert isinstance(got, np.ndarray)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if ref.dtype == np.float64:
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * max(1, abs(ref).max()))
    else:  # folding batch norm into the weights changes float32 rounding slightly
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1, abs(ref).max()))


def only_plan(predict):
    assert len(predict._plans) == 1
    return next(iter(predict._plans.values()))


def step_kinds(plan):
    """The plan's steps as (op class name, relu fused)."""
    return [(type(step.fn).__name__, step.relu) for step in plan.steps]


def conv_bn_relu(c_in=3, c_out=4, seed=0, **conv):
    return nn.Sequential(nn.Conv2D(c_in, c_out, 3, padding=1, seed=seed, **conv),
                         nn.BatchNorm2D(c_out), nn.ReLU())


class ConvReadTwice(nn.Module):
    """bn(c) + c with c = conv(x): the convolution's result has two readers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1, seed=1)
        self.bn = nn.BatchNorm2D(4)

    def forward(self, x):
        c = self.conv(x)
        return self.bn(c) + c


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = conv_bn_relu(3, 4, seed=2)
        self.head1 = nn.Sequential(nn.Flatten(), nn.Dense(4 * 8 * 8, 5, seed=3))
        self.head2 = nn.Conv2D(4, 2, 1, seed=4)

    def forward(self, x):
        h = self.body(x)
        return self.head1(h), self.head2(h)


class OutsideOps(nn.Module):
    """Doubles its input on .data: the trace sees a constant, not an op on the input."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(cl.tensor(x.data * 2.0))


class ReturnsNonTensor(nn.Module):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


def zoo_model(name):
    if name == "lenet5":
        return models.lenet5(seed=0), (28, 28, 1)
    return randomize_batch_norms(models.get("resnet20", num_classes=10, seed=0)), (32, 32, 3)


# ---------------------------------------------------------------------------- zoo models
@pytest.mark.parametrize("name, batch", [("lenet5", 1), ("lenet5", 5), ("lenet5", 300),
                                         ("resnet20", 1), ("resnet20", 5), ("resnet20", 70)])
def test_zoo_model_matches_its_eval_forward(name, batch):
    model, shape = zoo_model(name)
    x = images(batch, *shape)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    # a second call replays the stored plan: same answer
    assert_matches(predict(x), eval_forward(model, x))
    # which path each convolution replays: Conv2d.prepared's closures, "run" (buffers made
    # once) or "run_forward" (the chunked forward, where the batch needs several chunks)
    runs = {step.run.__name__ for step in only_plan(predict).steps
            if type(step.fn).__name__ == "Conv2d"}
    if batch == 1:  # every convolution fits one chunk: all prepared
        assert runs == {"run"}
    if batch >= 70:  # the batch takes several chunks: the chunked forward is replayed
        assert "run_forward" in runs


def test_resnet20_plan_has_no_batch_norm_or_relu_step():
    model, shape = zoo_model("resnet20")
    predict = nn.Predictor(model)
    predict(images(2, *shape))
    kinds = step_kinds(only_plan(predict))
    names = {k for k, _ in kinds}
    assert "BatchNorm" not in names and "ReLU" not in names
    assert sum(k == "Conv2d" for k, _ in kinds) == 19
    assert ("Add", True) in kinds  # relu(out + shortcut) fused into the add


# ---------------------------------------------------------------------------- folding, fusing
def test_conv_batch_norm_relu_becomes_one_conv_step():
    model = randomize_batch_norms(conv_bn_relu())
    x = images(3)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    assert step_kinds(only_plan(predict)) == [("Conv2d", True)]


@pytest.mark.parametrize("bias", [True, False])
def test_folding_keeps_conv_bias_and_groups(bias):
    model = randomize_batch_norms(conv_bn_relu(4, 6, bias=bias, groups=2))
    if bias:
        model[0].bias.data[...] = RNG.normal(size=6)
    x = images(2, c=4)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    assert step_kinds(only_plan(predict)) == [("Conv2d", True)]


def test_conv_result_read_twice_is_not_folded():
    model = randomize_batch_norms(ConvReadTwice())
    x = images(2)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    assert [k for k, _ in step_kinds(only_plan(predict))] == ["Conv2d", "BatchNorm", "Add"]


def test_residual_block_matches_forward():
    block = nn.Sequential(nn.Conv2D(4, 8, 3, stride=2, padding=1, bias=False, seed=6),
                          nn.BatchNorm2D(8), nn.ReLU(),
                          nn.Conv2D(8, 8, 3, padding="same", bias=False, seed=7),
                          nn.BatchNorm2D(8))
    shortcut = nn.Sequential(nn.Conv2D(4, 8, 1, stride=2, bias=False, seed=8), nn.BatchNorm2D(8))
    model = randomize_batch_norms(nn.Sequential(
        nn.Residual(block, shortcut), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2D(8, 8, 3, padding=1, seed=9), nn.BatchNorm2D(8))),
        nn.ReLU(), nn.MaxPool2D(2)))
    x = images(3, 10, 10, 4)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    kinds = step_kinds(only_plan(predict))
    assert [k for k, _ in kinds].count("BatchNorm") == 0
    assert kinds.count(("Add", True)) == 2


def test_dense_relu_chain_fuses_relu_into_linear():
    model = nn.Sequential(nn.Flatten(), nn.Dense(48, 32, seed=10), nn.ReLU(),
                          nn.Dense(32, 16, seed=11), nn.ReLU(), nn.Dense(16, 3, seed=12))
    for layer in (model[1], model[3]):
        layer.bias.data[...] = RNG.normal(size=layer.bias.data.shape)
    x = images(4, 4, 4, 3)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    kinds = step_kinds(only_plan(predict))
    assert "ReLU" not in {k for k, _ in kinds}
    assert kinds.count(("Linear", True)) == 2


# ---------------------------------------------------------------------------- PyTorch oracle
def test_resnet20_matches_pytorch(torch):
    zoo = _torch_zoo.make(torch)
    torch.manual_seed(5)
    tmodel = zoo.CifarResNet(20).eval()
    _torch_zoo.randomize_batch_norm(torch, tmodel)
    ours = models.resnet20(init="zeros")
    models.load_torch_state_dict(ours, _torch_zoo.numpy_state(tmodel.state_dict()),
                                 arch="resnet20")
    x = images(3, 32, 32, 3)
    with torch.no_grad():
        theirs = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    mine = nn.Predictor(ours)(x)
    assert mine.shape == theirs.shape
    scale = np.abs(theirs).max()
    assert scale > 0
    assert np.abs(mine - theirs).max() <= 1e-4 * scale


# ---------------------------------------------------------------------------- weights, modes
@pytest.mark.parametrize("changed", [0, 1, 3], ids=["folded_conv", "conv", "dense"])
def test_weights_are_snapshotted_until_reset(changed):
    # the second convolution has 12 input channels: its kernel matrix is a reshape of W
    model = randomize_batch_norms(nn.Sequential(
        conv_bn_relu(3, 12), nn.Conv2D(12, 4, 3, padding=1, seed=13), nn.Flatten(),
        nn.Dense(4 * 8 * 8, 5, seed=14)))
    x = images(2)
    predict = nn.Predictor(model)
    old = eval_forward(model, x)
    assert_matches(predict(x), old)
    layer = model[0][0] if changed == 0 else model[changed]
    layer.weight.data[...] += 1.0
    new = eval_forward(model, x)
    assert np.abs(new - old).max() > 1e-2  # the change matters
    assert_matches(predict(x), old)
    predict.reset()
    assert predict._plans == {}
    assert_matches(predict(x), new)


def test_unfolded_batch_norm_statistics_are_snapshotted():
    model = randomize_batch_norms(ConvReadTwice())
    x = images(2)
    predict = nn.Predictor(model)
    old = eval_forward(model, x)
    assert_matches(predict(x), old)
    model.bn.running_mean[...] += 1.0
    model.bn.running_var[...] *= 4.0
    assert_matches(predict(x), old)


def test_modes_restored_and_running_statistics_untouched():
    model = randomize_batch_norms(nn.Sequential(conv_bn_relu(), nn.Flatten(),
                                                nn.Dense(4 * 8 * 8, 5, seed=14),
                                                nn.BatchNorm1D(5), nn.Dropout(0.5)))
    model.train()
    stats = [(m.running_mean.copy(), m.running_var.copy()) for m in model.modules()
             if isinstance(m, (nn.BatchNorm2D, nn.BatchNorm1D))]
    x = images(4)
    y = nn.Predictor(model)(x)  # traced, checked and run in eval mode
    assert all(m.training for m in model.modules())
    after = [(m.running_mean, m.running_var) for m in model.modules()
             if isinstance(m, (nn.BatchNorm2D, nn.BatchNorm1D))]
    for (mean0, var0), (mean1, var1) in zip(stats, after, strict=True):
        np.testing.assert_array_equal(mean1, mean0)
        np.testing.assert_array_equal(var1, var0)
    assert_matches(y, eval_forward(model, x))  # eval mode: no dropout, running statistics


# ---------------------------------------------------------------------------- the check
@pytest.mark.parametrize("layer", [
    pytest.param(lambda: nn.Sequential(nn.Flatten(), nn.Dense(8 * 8 * 3, 4, seed=5)),
                 id="dense"),
    pytest.param(lambda: nn.Conv2D(3, 4, 3, seed=5), id="conv"),
])
def test_forward_outside_ops_is_refused_by_the_check(layer):
    x = images(2)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        nn.Predictor(OutsideOps(layer()))(x)
    model = OutsideOps(layer())
    y = nn.Predictor(model, check=False)(x)  # unchecked: the trace is used as it is
    assert y.shape == eval_forward(model, x).shape


# ---------------------------------------------------------------------------- outputs, inputs
@pytest.mark.parametrize("make", [lambda: (randomize_batch_norms(conv_bn_relu()), (8, 8, 3)),
                                  lambda: (models.lenet5(seed=1), (28, 28, 1))],
                         ids=["conv_ending", "lenet5"])
def test_outputs_are_not_overwritten_by_later_calls(make):
    model, shape = make()
    x1, x2 = images(2, *shape), images(2, *shape)
    predict = nn.Predictor(model)
    y1_ref = predict(x1)
    y1 = y1_ref.copy()
    y2 = predict(x2)
    predict(x2)
    np.testing.assert_array_equal(y1_ref, y1)
    assert_matches(y1, eval_forward(model, x1))
    assert_matches(y2, eval_forward(model, x2))


def test_tuple_of_outputs():
    model = randomize_batch_norms(TwoHeads())
    x = images(3)
    got = nn.Predictor(model)(x)
    ref = eval_forward(model, x)
    assert isinstance(got, tuple) and len(got) == 2
    for g, r in zip(got, ref, strict=True):
        assert_matches(g, r)


def test_float64_model_matches_tightly():
    model = randomize_batch_norms(nn.Sequential(conv_bn_relu(), nn.MaxPool2D(2), nn.Flatten(),
                                                nn.Dense(4 * 4 * 4, 3, seed=15))).double()
    x = images(3, dtype=np.float64)
    y = nn.Predictor(model)(x)
    assert y.dtype == np.float64
    assert_matches(y, eval_forward(model, x))


def test_tensor_input_agrees_with_array_input():
    model = randomize_batch_norms(conv_bn_relu())
    x = images(2)
    predict = nn.Predictor(model)
    ref = eval_forward(model, x)
    assert_matches(predict(cl.tensor(x)), ref)
    assert_matches(predict(cl.tensor(x, requires_grad=True)), ref)
    assert_matches(predict(x), ref)


def test_nested_list_input_agrees_with_array_input():
    model = randomize_batch_norms(conv_bn_relu())
    x = images(2)
    predict = nn.Predictor(model)
    got = predict(x.tolist())
    assert_matches(got, eval_forward(model, x))


def test_type_errors():
    with pytest.raises(TypeError, match="callable"):
        nn.Predictor(42)
    x = images(1)
    for make in (lambda t: 1.5, lambda t: t.data * 2):  # a float, an ndarray
        with pytest.raises(TypeError, match="expected a Tensor"):
            nn.Predictor(ReturnsNonTensor(make))(x)


def test_threads_calling_one_predictor_get_their_own_results():
    model = randomize_batch_norms(nn.Sequential(conv_bn_relu(), nn.Flatten(),
                                                nn.Dense(4 * 8 * 8, 5, seed=16)))
    predict = nn.Predictor(model)
    inputs = [[images(2, rng=np.random.default_rng(100 * t + i)) for i in range(20)]
              for t in range(4)]
    refs = [[eval_forward(model, x) for x in xs] for xs in inputs]
    results = [[None] * 20 for _ in range(4)]
    errors = []
    start = threading.Barrier(4)

    def work(t):
        try:
            start.wait()
            for i, x in enumerate(inputs[t]):
                results[t][i] = predict(x)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for t in range(4):
        for got, ref in zip(results[t], refs[t], strict=True):
            assert_matches(got, ref)


# ------------------------------------------------------------------- non-contiguous results
def test_relu_after_add_of_transposed_views():
    class TransposedSum(nn.Module):
        def forward(self, x):
            a = F.transpose(x, (0, 2, 1, 3))
            return F.relu(a + a)

    model = TransposedSum()
    x = images(2, 3, 4, 5)
    assert_matches(nn.Predictor(model)(x), eval_forward(model, x))


# ---------------------------------------------------------------------------- record_ops
def test_record_ops_lists_ops_in_order():
    a = cl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = cl.tensor(np.ones((2, 3), np.float32))
    with record_ops() as ops:
        c = a + b
        d = F.relu(c)
        e = d.sum()
        f = F.max_pool2d(cl.tensor(np.ones((1, 4, 4, 1), np.float32)), 2)
    assert [type(fn).__name__ for fn, _, _, _ in ops[:2]] == ["Add", "ReLU"]
    assert [id(out) for _, _, out, _ in ops] == [id(c), id(d), id(e), id(f)]  # the very tensors
    assert [[id(t) for t in inputs] for _, inputs, _, _ in ops[:3]] == [[id(a), id(b)], [id(c)],
                                                                       [id(d)]]
    assert all(isinstance(fn, cl.Function) for fn, _, _, _ in ops)
    # settings: the op's attributes before its forward ran (the pool's geometry, no cache)
    pool, settings = ops[3][0], ops[3][3]
    assert settings["size"] == (2, 2) and "y" not in settings and hasattr(pool, "y")
    assert "mask" not in ops[1][3] and hasattr(ops[1][0], "mask")  # ReLU's cache
    a + b  # outside the context: not recorded
    assert len(ops) == 4


def test_record_ops_cannot_nest_and_is_per_thread():
    x = cl.tensor(np.ones(3, np.float32))
    with record_ops() as ops:
        with pytest.raises(RuntimeError, match="already recording"):
            with record_ops():
                pass
        y = x + x  # the outer recording goes on
        other = threading.Thread(target=lambda: x * x)  # another thread: not recorded
        other.start()
        other.join()
    assert [id(out) for _, _, out, _ in ops] == [id(y)]
    with record_ops() as again:  # usable again once closed
        x + x
    assert len(again) == 1


# ---------------------------------------------------------------------------- property
@st.composite
def conv_stacks(draw):
    layers, c_in = [], draw(st.integers(1, 8))
    first_c_in = c_in
    for _ in range(draw(st.integers(1, 2))):
        groups = draw(st.sampled_from([1, 2] if c_in % 2 == 0 else [1]))
        c_out = groups * draw(st.integers(1, 16 // groups))
        k = draw(st.integers(1, 5))
        stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        padding = draw(st.sampled_from([0, 1, "same", "valid"]))
        layers.append(nn.Conv2D(c_in, c_out, k, stride=stride, padding=padding,
                                dilation=dilation, groups=groups, bias=draw(st.booleans()),
                                seed=draw(st.integers(0, 2**16))))
        if layers[-1].bias is not None:
            layers[-1].bias.data[...] = 0.1 * np.arange(c_out)
        if draw(st.booleans()):
            layers.append(nn.BatchNorm2D(c_out))
        if draw(st.booleans()):
            layers.append(nn.ReLU())
        c_in = c_out
    h, w = draw(st.integers(4, 16)), draw(st.integers(4, 16))
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    return randomize_batch_norms(nn.Sequential(*layers), seed), (batch, h, w, first_c_in)


def _fits(model, shape):
    """Whether every convolution of the stack has an output of at least 1x1."""
    try:
        with cl.no_grad():
            model.eval()(cl.tensor(np.zeros(shape, np.float32)))
    except ValueError:
        return False
    return True


@settings(max_examples=40, deadline=None)
@given(conv_stacks(), st.integers(0, 2**16))
def test_random_conv_stacks_match_eval_forward(stack, seed):
    model, shape = stack
    assume(_fits(model, shape))
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    predict = nn.Predictor(model)
    assert_matches(predict(x), eval_forward(model, x))
    names = [k for k, _ in step_kinds(only_plan(predict))]
    assert "BatchNorm" not in names and "ReLU" not in names  # all folded / fused


# ------------------------------------------------------------------- what a forward may do
class Computed(nn.Module):
    """Weights computed by ops inside forward (weight scaling, an exp-parametrised gamma)."""

    def __init__(self, what):
        super().__init__()
        self.what = what
        self.conv = nn.Conv2D(3, 4, 3, padding=1, seed=6)
        self.bn = nn.BatchNorm2D(4)
        self.log_gamma = nn.Parameter(np.full(4, 0.7, np.float32))

    def forward(self, x):
        w, b, gamma = self.conv.weight, self.conv.bias, self.bn.gamma
        if self.what == "weight":
            w = w * 0.5
        elif self.what == "bias":
            b = b * 2.0
        else:
            gamma = F.exp(self.log_gamma)
        c = F.conv2d(x, w, b, padding=1)
        y = F.batch_norm(c, gamma, self.bn.beta, self.bn.running_mean, self.bn.running_var,
                         training=False)
        return F.relu(y)


@pytest.mark.parametrize("what", ["weight", "bias", "gamma"])
@pytest.mark.parametrize("check", [True, False])
def test_weights_computed_in_forward(what, check):
    """Nothing is folded into a convolution whose weights an op computes; results stay right."""
    model = randomize_batch_norms(Computed(what))
    model.conv.bias.data[...] = np.linspace(-1, 1, 4)
    x = images(2)
    assert_matches(nn.Predictor(model, check=check)(x), eval_forward(model, x))


def test_batch_norm_without_running_statistics():
    class BatchStats(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 4, 3, seed=7)

        def forward(self, x):
            c = self.conv(x)
            return F.batch_norm(c, None, None, None, None, training=True) + c

    model, x = BatchStats(), images(3)
    assert_matches(nn.Predictor(model)(x), eval_forward(model, x))


def test_values_outside_a_domain_and_nan():
    """The check's second input keeps the first one's values (shuffled): log of positive
    inputs is fine; NaN where the model gives NaN is agreement, not a difference."""
    class Log(nn.Module):
        def forward(self, x):
            return F.log(x)

    x = np.abs(images(2)) + 0.1
    assert_matches(nn.Predictor(Log())(x), eval_forward(Log(), x))
    model = conv_bn_relu()
    x = images(2)
    x[0, 3, 3, 1] = np.nan
    got, ref = nn.Predictor(model)(x), eval_forward(model, x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(ref).any()
    assert_matches(np.nan_to_num(got), np.nan_to_num(ref))


def test_integer_and_float16_inputs_are_converted_as_the_model_converts_them():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 4, 3, seed=8)

        def forward(self, x):
            return self.conv(x.astype(np.float32) * (1 / 255))

    x8 = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    assert_matches(nn.Predictor(Scaled())(x8), eval_forward(Scaled(), x8))
    model = nn.Sequential(nn.MaxPool2D(2), nn.Flatten(), nn.BatchNorm1D(48))
    model[2].running_mean[...] = 100.0
    model[2].running_var[...] = 0.01
    x16 = (100 + images(2)).astype(np.float16)
    got, ref = nn.Predictor(model)(x16), eval_forward(model, x16)
    assert got.dtype == ref.dtype == np.float32
    assert_matches(got, ref)


def test_relu_after_a_sum_of_scalars():
    class Scalar(nn.Module):
        def forward(self, x):
            s = F.sum(x)
            return F.relu(s + s)

    x = images(1)
    got = nn.Predictor(Scalar())(x)
    np.testing.assert_allclose(got, eval_forward(Scalar(), x), rtol=1e-6)


def test_a_predictor_called_inside_its_own_model_is_refused():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 2, 1, seed=9)
            self.predict = None

        def forward(self, x):
            if self.predict is not None:
                self.predict(x.data)  # re-enters the Predictor while it traces
            return self.conv(x)

    model = Inner()
    model.predict = nn.Predictor(model)
    with pytest.raises(RuntimeError, match="from inside the forward it is tracing"):
        model.predict(images(1))


def test_large_replays_keep_no_cache():
    """Ops replayed on large inputs are made anew each call: their caches (the pool's input
    and output, the ReLU mask) go with them; the trace's own cache is not kept either."""
    model = models.lenet5(seed=0)
    predict = nn.Predictor(model)
    predict(np.zeros((64, 28, 28, 1), np.float32))  # pool1's input: 1.2 MB
    plan = only_plan(predict)
    pools = [s.fn for s in plan.steps if type(s.fn).__name__ == "MaxPooling2D"]
    assert len(pools) == 2
    assert not hasattr(pools[0], "y") and not hasattr(pools[0], "x_pad")
    assert plan.traced is None


# ------------------------------------------------------------- the check's second input, state
class DataStatistic(nn.Module):
    """Scales by a statistic of .data: a shuffle of the input would not change it."""

    def __init__(self, which):
        super().__init__()
        self.which = which

    def forward(self, x):
        if self.which == "max":
            return x * (1.0 / float(np.abs(x.data).max()))
        return x * float(x.data.sum() + 1.0)


@pytest.mark.parametrize("which,first", [("max", "images"), ("sum", "zeros")])
def test_the_check_catches_statistics_of_data_and_constant_inputs(which, first):
    x = images(1) if first == "images" else np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        nn.Predictor(DataStatistic(which))(x)


def test_a_bias_given_as_the_input_is_not_taken_for_a_constant():
    class BiasIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.img = cl.tensor(images(1, 6, 6, 3, rng=np.random.default_rng(2)))
            self.w = nn.Parameter(np.random.default_rng(3).normal(size=(3, 3, 3, 4)).astype(
                np.float32))

        def forward(self, b):
            return F.conv2d(self.img, self.w, b)

    model, b = BiasIn(), np.float32([1.0, -2.0, 3.0, 15.0])
    assert_matches(nn.Predictor(model)(b), eval_forward(model, b))


def test_the_check_names_nan_in_other_places():
    class NanWhereNegative(nn.Module):
        def forward(self, x):
            return x * cl.tensor(np.where(x.data > 0, 1.0, np.nan).astype(np.float32))

    with pytest.raises(RuntimeError, match="NaN in other places"):
        nn.Predictor(NanWhereNegative())(images(1))


def test_empty_results_with_a_fused_relu():
    class AddRelu(nn.Module):
        def forward(self, x):
            return F.relu(x + x)

    for shape in [(0,), (2, 0), (1, 3, 0, 2)]:
        x = np.zeros(shape, np.float32)
        got = nn.Predictor(AddRelu())(x)
        assert got.shape == shape


def test_index_arrays_are_snapshotted_like_weights():
    class Pick(nn.Module):
        def __init__(self):
            super().__init__()
            self.idx = np.array([0, 1, 2])

        def forward(self, x):
            return x[:, self.idx]

    model = Pick()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    predict = nn.Predictor(model)
    old = eval_forward(model, x)
    assert_matches(predict(x), old)
    model.idx[:] = [2, 1, 0]  # changed in place after the trace
    assert_matches(predict(x), old)
    predict.reset()
    assert_matches(predict(x), eval_forward(model, x))


def test_seeded_dropout_replays_the_models_masks():
    """F.dropout(..., training=True, rng=0) draws the same mask on every call of the model;
    the replay starts each call from the trace's Generator, so it draws that mask too."""
    class SeededDropout(nn.Module):
        def forward(self, x):
            return F.dropout(x, 0.5, training=True, rng=0)

    model, x = SeededDropout(), images(2)
    predict = nn.Predictor(model)
    ref = eval_forward(model, x)
    assert (ref == 0).any()
    for _ in range(3):
        assert_matches(predict(x), ref)
