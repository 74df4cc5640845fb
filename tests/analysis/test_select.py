"""select: satisficing constraints, then the optimizing metric (the course's A/B/C)."""

import pytest

from cnnlab.analysis import select
from cnnlab.analysis.select import direction

COURSE = {"A": {"accuracy": 0.90, "latency_ms": 80},
          "B": {"accuracy": 0.92, "latency_ms": 95},
          "C": {"accuracy": 0.95, "latency_ms": 1500}}


def test_course_example_selects_b():
    s = select(COURSE, optimize="accuracy", satisfice=["latency_ms<=100"])
    assert s.best == "B" and s.mode == "max"
    broken = {c.name: [str(k) for k in c.broken] for c in s.candidates}
    assert broken == {"A": [], "B": [], "C": ["latency_ms<=100"]}
    assert s.reason("C") == "rejected: latency_ms<=100 (has 1500)"
    assert s.reason("B").startswith("selected")
    assert s.reason("A") == "acceptable"
    # without the constraint the optimizing metric alone picks C
    assert select(COURSE, optimize="accuracy").best == "C"
    # the same as a list of dicts named by their "name" key
    rows = [{"name": k, **v} for k, v in COURSE.items()]
    assert select(rows, optimize="accuracy", satisfice=["latency_ms<=100"]).best == "B"


def test_minimizing_and_several_constraints():
    cands = {"a": {"latency_ms": 5, "dev_accuracy": 0.80, "params": 1e5},
             "b": {"latency_ms": 9, "dev_accuracy": 0.97, "params": 2e6},
             "c": {"latency_ms": 7, "dev_accuracy": 0.95, "params": 5e5}}
    s = select(cands, optimize="latency_ms", satisfice=["dev_accuracy>=0.9", "params<1e6"])
    assert s.mode == "min" and s.best == "c"
    assert [str(k) for k in s.candidates[1].broken] == ["params<1e+06"]
    assert select(cands, optimize="params", satisfice=["latency_ms<5"]).best is None


def test_missing_metric_breaks_the_constraint_and_ties_go_first():
    cands = [{"name": "x", "acc": 0.9}, {"name": "y", "acc": 0.9, "latency_ms": 10},
             {"name": "z", "acc": 0.9, "latency_ms": 20}]
    s = select(cands, optimize="acc", satisfice=["latency_ms<=50"], mode="max")
    assert s.best == "y"
    assert s.reason("x") == "rejected: latency_ms<=50 (has none)"


@pytest.mark.parametrize("metric, mode", [("dev_accuracy", "max"), ("test_f1", "max"),
                                          ("latency_ms", "min"), ("dev_loss", "min"),
                                          ("params", "min"), ("train_seconds", "min")])
def test_direction(metric, mode):
    assert direction(metric) == mode


@pytest.mark.parametrize("kwargs, match", [
    ({"optimize": "acuracy"}, "unknown optimizing metric 'acuracy'; known metrics: "
                              "accuracy, latency_ms"),
    ({"optimize": "accuracy", "satisfice": ["speed<1"]},
     "unknown metric 'speed'; known metrics: accuracy, latency_ms"),
    ({"optimize": "accuracy", "satisfice": ["latency_ms=<1"]}, "is not METRIC OP NUMBER"),
    ({"optimize": "accuracy", "mode": "up"}, "mode must be 'max' or 'min'"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select(COURSE, **kwargs)
    with pytest.raises(ValueError, match="no candidates"):
        select({}, optimize="accuracy")
