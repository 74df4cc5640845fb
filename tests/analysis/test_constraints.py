"""The satisficing-constraint syntax shared by compare and tune."""

import math

import pytest

from cnnlab.analysis import parse_constraint


@pytest.mark.parametrize("text, metric, op, value", [
    ("latency_ms<=100", "latency_ms", "<=", 100.0),
    (" dev_accuracy >= 0.9 ", "dev_accuracy", ">=", 0.9),
    ("params<5e4", "params", "<", 5e4),
    ("dev_error>2%", "dev_error", ">", 0.02),
    ("epochs==3", "epochs", "==", 3.0),
])
def test_parse(text, metric, op, value):
    c = parse_constraint(text)
    assert (c.metric, c.op) == (metric, op)
    assert c.value == pytest.approx(value)


def test_holds_and_violation_on_the_course_example():
    c = parse_constraint("latency_ms<=100")
    runs = {"A": 80, "B": 95, "C": 1500}
    assert [k for k, v in runs.items() if c.holds({"latency_ms": v})] == ["A", "B"]
    assert c.violation({"latency_ms": 95}) == 0.0
    assert c.violation({"latency_ms": 1500}) == pytest.approx(1400)
    assert not c.holds({}) and c.violation({}) == math.inf
    assert not c.holds({"latency_ms": float("nan")})


@pytest.mark.parametrize("text, match", [
    ("latency_ms=<100", r"not METRIC OP NUMBER"),
    ("<=100", r"not METRIC OP NUMBER"),
    ("latency_ms<=fast", r"'fast' is not a finite number"),
    ("latency_ms<=inf", r"is not a finite number"),
])
def test_malformed(text, match):
    with pytest.raises(ValueError, match=match):
        parse_constraint(text)


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown metric 'speed'; known metrics: "
                                         r"dev_accuracy, latency_ms"):
        parse_constraint("speed<3", known=["latency_ms", "dev_accuracy"])
