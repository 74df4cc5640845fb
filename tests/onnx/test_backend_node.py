"""Conformance: ONNX's own backend node tests for the CNN operators, run through
``cnnlab.onnx.backend`` with ``onnx.backend.test.BackendTest``.

The cases are the single-node tests of the installed onnx package (generated from its
``onnx/backend/test/case/node`` definitions; expected outputs written by ONNX's authors) whose
operator is in the issue's CNN operator set. Every case passes except the ones in SKIPPED,
each with its reason; RECORDED holds the pass count per operator (also in docs/ONNX.md),
and the test fails if a count drops below it or the docs' table drifts from it.
"""

from __future__ import annotations

import re
import unittest
import warnings
from collections import Counter
from pathlib import Path

import pytest

OPERATORS = ("Conv MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool "
             "BatchNormalization Relu LeakyRelu Sigmoid Tanh Softmax LogSoftmax Gemm MatMul Add "
             "Sub Mul Concat Flatten Reshape Transpose Dropout Pad Identity Clip LRN "
             "ReduceMean").split()

# (pattern of case names, why they cannot pass), first match wins
SKIP_RULES = [
    (r"_u?int(8|16|32|64)", "integer tensors (cnnlab computes in float32 and float64)"),
    (r"^test_(edge|reflect|wrap)_pad$", "Pad modes edge, reflect, wrap (cnnlab pads with a "
                                        "constant)"),
    (r"pool_(1d|3d)_", "1-D and 3-D pooling (cnnlab pools 2-D images)"),
    (r"pool_2d_dilations$", "dilated pooling windows (cnnlab's pooling has no dilation)"),
    (r"maxpool_with_argmax", "MaxPool's second output, Indices"),
    (r"batchnorm_.*_training_mode$", "training-mode BatchNormalization returns the updated "
                                     "running statistics as outputs (cnnlab keeps them in the "
                                     "layer)"),
    (r"dropout.*mask|training_dropout(_default)?$", "Dropout's mask output, or a training-mode "
                                                    "mask drawn at random by the reference"),
    (r"^test_identity_(opt|sequence)$", "optional and sequence values (cnnlab runs tensors)"),
]

RECORDED = {  # passing cases per operator, of all its single-node cases (docs/ONNX.md)
    "Add": (2, 8), "AveragePool": (12, 20), "BatchNormalization": (2, 4), "Clip": (9, 12),
    "Concat": (12, 12), "Conv": (6, 6), "Dropout": (5, 12), "Flatten": (9, 9),
    "Gemm": (11, 11), "GlobalAveragePool": (2, 2), "GlobalMaxPool": (2, 2),
    "Identity": (2, 5), "LRN": (2, 2), "LeakyRelu": (3, 3), "LogSoftmax": (7, 7),
    "LpPool": (5, 8), "MatMul": (7, 7), "MaxPool": (10, 19), "Mul": (3, 9), "Pad": (3, 6),
    "ReduceMean": (8, 8), "Relu": (1, 1), "Reshape": (10, 10), "Sigmoid": (2, 2),
    "Softmax": (7, 7), "Sub": (3, 9), "Tanh": (2, 2), "Transpose": (7, 7),
}


def skip_reason(name: str):
    for pattern, reason in SKIP_RULES:
        if re.search(pattern, name):
            return reason
    return None


def node_cases():
    """{case name: operator} for the single-node cases of the CNN operators."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():  # the case generators' own overflow warnings
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    out = {}
    for case in cases:
        nodes = case.model.graph.node
        if len(nodes) == 1 and nodes[0].op_type in OPERATORS:
            out[case.name] = nodes[0].op_type
    return out


@pytest.fixture(scope="module")
def results(onnx):
    """{case name: None (passed) or the failure's last line}, from BackendTest's suite."""
    import onnx.backend.test

    import cnnlab.onnx.backend as backend

    cases = node_cases()
    tests = onnx.backend.test.BackendTest(backend, __name__)
    for name in cases:
        tests.include(f"^{name}_cpu$")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = unittest.TestResult()
        tests.test_suite.run(outcome)
    failed = {}
    for test, trace in outcome.failures + outcome.errors:
        failed[test.id().rsplit(".", 1)[-1][: -len("_cpu")]] = trace.strip().splitlines()[-1]
    ran = outcome.testsRun - len(outcome.skipped)  # the others are filtered out as skips
    return cases, failed, ran


def test_every_case_passes_unless_skipped_for_a_stated_reason(results):
    cases, failed, ran = results
    assert ran == len(cases)
    unexplained = {n: why for n, why in failed.items() if skip_reason(n) is None}
    assert not unexplained, f"node tests failing with no recorded reason: {unexplained}"
    stale = sorted(n for n in cases if skip_reason(n) and n not in failed)
    assert not stale, f"these cases pass now: remove their skip rule, raise RECORDED: {stale}"


@pytest.mark.parametrize("op", sorted(RECORDED))
def test_pass_count_does_not_drop(op, results):
    cases, failed, _ = results
    mine = [n for n, o in cases.items() if o == op]
    passed = sum(n not in failed for n in mine)
    want, total = RECORDED[op]
    assert passed >= want, (
        f"{op}: {passed} of {len(mine)} node tests pass, {want} recorded; failing: "
        f"{ {n: failed[n] for n in mine if n in failed} }")
    assert len(mine) == total


def test_docs_table_matches_the_recorded_counts():
    text = (Path(__file__).parents[2] / "docs" / "ONNX.md").read_text()
    rows = dict(re.findall(r"^\| (\w+) \| (\d+ / \d+) \|", text, flags=re.M))
    assert {op: f"{p} / {t}" for op, (p, t) in RECORDED.items()} == rows


def test_skipped_cases_are_listed_in_the_docs(onnx):
    text = (Path(__file__).parents[2] / "docs" / "ONNX.md").read_text()
    names = sorted(n for n in node_cases() if skip_reason(n))
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/ONNX.md does not list these skipped cases: {missing}"


def test_every_operator_of_the_issue_is_counted():
    assert set(RECORDED) == set(OPERATORS)
    assert Counter(OPERATORS).most_common(1)[0][1] == 1


# ONNX's "light" models: the model zoo's classic CNNs (opset 9) with every weight a constant
# fill (ConstantOfShape), run by BackendTest on a fixed input against stored outputs.
LIGHT_PASS = ["densenet121", "inception_v2", "shufflenet", "squeezenet"]
# Their constant weights make the 1000 logits equal and about 4e12 in size, so the expected
# softmax is exactly uniform only when every logit is rounded alike; cnnlab's dense layer runs
# in column blocks of 250 and two columns per block come out 1e-5 (4e7) apart, so 8
# probabilities move, although every intermediate value agrees with onnxruntime to 4e-5
# (test_light_models_agree_with_onnxruntime_before_the_softmax checks the logits).
LIGHT_ROUNDING = ["bvlc_alexnet", "inception_v1", "resnet50", "vgg19", "zfnet512"]


@pytest.fixture(scope="module")
def light_results(onnx):
    import onnx.backend.test

    import cnnlab.onnx.backend as backend

    tests = onnx.backend.test.BackendTest(backend, __name__)
    for name in LIGHT_PASS + LIGHT_ROUNDING:
        tests.include(f"^test_{name}_cpu$")
    outcome = unittest.TestResult()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests.test_suite.run(outcome)
    return outcome


def test_light_model_zoo_cnns_pass(light_results):
    assert light_results.testsRun - len(light_results.skipped) == 9
    assert not light_results.errors, light_results.errors  # every one of them imports
    failed = sorted(t.id().rsplit(".", 1)[-1][len("test_"):-len("_cpu")]
                    for t, _ in light_results.failures)
    assert failed == sorted(LIGHT_ROUNDING)


@pytest.mark.parametrize("name", [n for n in LIGHT_ROUNDING if n != "vgg19"])  # (the slowest)
def test_light_models_agree_with_onnxruntime_before_the_softmax(name, onnx, ort):
    import numpy as np

    import cnnlab.onnx.backend as backend

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    model = onnx.load(str(path / f"light_{name}.onnx"))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    model = onnx.shape_inference.infer_shapes(model)
    logits = next(vi for vi in model.graph.value_info if vi.name == softmax.input[0])
    del model.graph.output[:]
    model.graph.output.append(logits)
    inits = {t.name for t in model.graph.initializer}
    x_info = next(vi for vi in model.graph.input if vi.name not in inits)
    shape = [d.dim_value for d in x_info.type.tensor_type.shape.dim]
    x = (np.arange(np.prod(shape)).reshape(shape) / np.prod(shape)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {x_info.name: x})
    (got,) = backend.prepare(model).run([x])
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
