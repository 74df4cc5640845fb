"""diagnose: the course's worked examples, Wilson intervals by hand, missing gaps are None."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.analysis import diagnose, wilson_interval
from cnnlab.analysis.diagnose import REMEDIES, from_metrics, gap_interval


@pytest.mark.parametrize("human, train, dev, focus, bias, variance", [
    # the course: human 1%, train 8%, dev 10% -> focus on bias (7% vs 2%)
    (0.01, 0.08, 0.10, "bias", 0.07, 0.02),
    # the same errors with human at 7.5% -> variance (0.5% vs 2%)
    (0.075, 0.08, 0.10, "variance", 0.005, 0.02),
])
def test_course_bias_or_variance(human, train, dev, focus, bias, variance):
    d = diagnose(train=train, dev=dev, human=human)
    assert d.focus == focus
    assert d.avoidable_bias == pytest.approx(bias)
    assert d.variance == pytest.approx(variance)
    assert d.variance_from == "dev"
    assert d.data_mismatch is None and d.dev_overfitting is None  # not measured, not 0
    assert d.remedies == REMEDIES[focus]
    assert any("bigger model" in r for r in REMEDIES["bias"])
    assert any("regulariz" in r for r in REMEDIES["variance"])


def test_course_data_mismatch_and_dev_overfitting():
    # the course: train 1%, train-dev 1.5%, dev 10% -> data mismatch
    d = diagnose(train=0.01, train_dev=0.015, dev=0.10, human=0.0)
    assert d.focus == "data_mismatch"
    assert d.variance == pytest.approx(0.005) and d.variance_from == "train_dev"
    assert d.data_mismatch == pytest.approx(0.085)
    assert any("artificial data synthesis" in r for r in d.remedies)
    # test far worse than dev: overfitted to the dev set
    d = diagnose(train=0.01, train_dev=0.011, dev=0.012, test=0.06, human=0.01)
    assert d.focus == "dev_overfitting"
    assert d.dev_overfitting == pytest.approx(0.048)
    assert d.remedies == ["get a bigger dev set (the model was tuned to this one)"]


def test_missing_gaps_are_none_and_zero_gaps_are_zero():
    d = diagnose(train=0.05, dev=0.05)
    assert d.avoidable_bias is None and d.data_mismatch is None and d.dev_overfitting is None
    assert d.variance == 0.0  # measured, and zero
    assert d.focus == "none"
    j = d.to_dict()
    assert j["avoidable_bias"] is None and j["human"] is None and j["variance"] == 0.0


def test_wilson_interval_by_hand():
    # p = 0.1, n = 100, z = 1.96: centre (0.1 + z^2/200)/(1 + z^2/100),
    # half z sqrt(0.0009 + z^2/40000)/(1 + z^2/100)
    z = 1.959963984540054
    centre = (0.1 + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(0.0009 + z * z / 40000) / (1 + z * z / 100)
    lo, hi = wilson_interval(0.1, 100)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert (round(lo, 4), round(hi, 4)) == (0.0552, 0.1744)
    # p = 0: the interval still has width (unlike the normal approximation)
    lo, hi = wilson_interval(0.0, 50)
    assert lo == pytest.approx(0.0, abs=1e-15)
    assert hi == pytest.approx(z * z / 50 / (1 + z * z / 50))


def test_significance_depends_on_the_sizes():
    # 8% vs 10%: on 100 images each the gap is noise; on 100,000 it is real
    small = diagnose(train=0.08, dev=0.10, sizes={"train": 100, "dev": 100})
    assert small.significant == {"variance": False}
    assert small.focus == "none"
    big = diagnose(train=0.08, dev=0.10, sizes={"train": 100_000, "dev": 100_000})
    assert big.significant == {"variance": True} and big.focus == "variance"
    # the gap interval is Newcombe's, from the two Wilson intervals
    l1, u1 = wilson_interval(0.10, 100)
    l2, u2 = wilson_interval(0.08, 100)
    lo, hi = small.gap_intervals["variance"]
    assert lo == pytest.approx(0.02 - math.sqrt((0.10 - l1) ** 2 + (u2 - 0.08) ** 2))
    assert hi == pytest.approx(0.02 + math.sqrt((u1 - 0.10) ** 2 + (0.08 - l2) ** 2))
    assert small.intervals["dev"] == pytest.approx((l1, u1))
    # human error has no size: exact; the bias gap then only carries train's uncertainty
    d = diagnose(train=0.08, dev=0.10, human=0.01, sizes={"train": 1000, "dev": 1000})
    lt, ut = wilson_interval(0.08, 1000)
    assert d.gap_intervals["avoidable_bias"] == pytest.approx((0.07 - (0.08 - lt),
                                                              0.07 + (ut - 0.08)))
    assert d.significant["avoidable_bias"] is True


@given(st.floats(0, 1), st.floats(0, 1), st.integers(1, 10_000), st.integers(1, 10_000))
def test_gap_interval_contains_the_gap(p1, p2, n1, n2):
    lo, hi = gap_interval(p1, wilson_interval(p1, n1), p2, wilson_interval(p2, n2))
    assert lo <= p1 - p2 + 1e-12 and p1 - p2 <= hi + 1e-12


def test_from_metrics_reads_a_run():
    m = {"train_accuracy": 0.99, "train_size": 900, "train_dev_accuracy": 0.985,
         "train_dev_size": 100, "dev_accuracy": 0.90, "dev_size": 1000}
    d = from_metrics(m, human=0.002)
    assert d.train == pytest.approx(0.01) and d.dev == pytest.approx(0.10)
    assert d.test is None and d.dev_overfitting is None
    assert d.sizes == {"train": 900, "train_dev": 100, "dev": 1000}
    assert d.focus == "data_mismatch"


@pytest.mark.parametrize("kwargs, match", [
    ({"train": 5.0, "dev": 0.1}, r"train must be an error rate in \[0, 1\] .*received 5.0"),
    ({"train": 0.1, "dev": None}, "dev error is required"),
    ({"train": 0.1, "dev": 0.1, "human": "1%"}, "human must be an error rate"),
    ({"train": 0.1, "dev": 0.1, "sizes": {"dev": 0}}, r"sizes\['dev'\] must be an int >= 1"),
    ({"train": 0.1, "dev": 0.1, "sizes": {"val": 5}}, "unknown set 'val'"),
])
def test_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        diagnose(**kwargs)
